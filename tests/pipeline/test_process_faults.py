"""Real processes killed and restarted: nothing accepted is lost, no viewer loses or repeats
a character."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from service.contract.events import DONE, TOKEN
from service.contract.settings import Settings
from tests.conftest import RunningWorker
from tests.jobs_api import submit, upstream_requests, upstream_text, wait_for, wait_until_ended
from tests.processes import gateway_process, worker_process
from tests.sse_client import ResumingViewer, read_stream

pytestmark = pytest.mark.slow


async def gateway_metric(http: aiohttp.ClientSession, url: str, name: str) -> float:
    """The sum of a metric's samples (over all labels) on a gateway's ``/metrics``."""
    async with http.get(f"{url}/metrics") as response:
        assert response.status == 200
        text = await response.text()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith((f"{name} ", f"{name}{{"))
    )


async def test_worker_killed_mid_job_is_reclaimed_and_finished_by_another(
    gateway: TestClient[Any, Any],
    settings: Settings,
    http: aiohttp.ClientSession,
    upstream_url: str,
    tmp_path: Path,
) -> None:
    first = worker_process(settings, tmp_path, "doomed").start()
    try:
        job = await submit(gateway, "long rust job\n#sim tokens=300 rate=60 unicode=1")
        url = str(gateway.make_url(job["events_url"]))
        early = await read_stream(http, url, max_events=6)
        assert any(event.event == TOKEN for event in early.events)
        first.kill()
    finally:
        first.kill()
    second = RunningWorker(settings)
    try:
        viewer = ResumingViewer(http, url, events=list(early.events))
        while not viewer.finished:
            await viewer.read()
        assert viewer.events[-1].event == DONE
        assert any(event.event == "reset" for event in viewer.events)
        requests = await upstream_requests(http, upstream_url, job["id"])
        assert [r["headers"]["x-tokenrelay-attempt"] for r in requests] == ["1", "2"]
        assert viewer.text == requests[-1]["text"]
        record = await wait_until_ended(gateway, job["id"])
        assert record["output"] == requests[-1]["text"]
        assert record["attempt"] == 2
    finally:
        await second.shutdown()


async def test_worker_sigterm_finishes_running_jobs_before_exiting(
    gateway: TestClient[Any, Any],
    settings: Settings,
    http: aiohttp.ClientSession,
    upstream_url: str,
    tmp_path: Path,
) -> None:
    process = worker_process(settings, tmp_path, "graceful").start()
    try:
        job = await submit(gateway, "short job\n#sim tokens=40 rate=100")
        url = str(gateway.make_url(job["events_url"]))
        await read_stream(http, url, max_events=3)
        process.signal(signal.SIGTERM)
        record = await wait_until_ended(gateway, job["id"])
        assert record["status"] == "done"
        assert record["attempt"] == 1
        assert process.wait() == 0
        assert record["output"] == await upstream_text(http, upstream_url, job["id"])
    finally:
        process.kill()


async def test_gateway_restart_mid_stream_viewers_resume_exactly(
    settings: Settings,
    worker: RunningWorker,
    http: aiohttp.ClientSession,
    upstream_url: str,
    tmp_path: Path,
) -> None:
    gateway = gateway_process(settings, tmp_path).start()
    try:
        async with http.post(
            f"{gateway.url}/v1/jobs",
            json={"prompt": "typescript\n#sim tokens=250 rate=80 unicode=1"},
        ) as response:
            job = await response.json()
        viewers = [ResumingViewer(http, gateway.url + job["events_url"]) for _ in range(5)]
        await asyncio.gather(*(viewer.read(max_events=5) for viewer in viewers))
        readers = [asyncio.create_task(viewer.read()) for viewer in viewers]

        async def all_streaming_again() -> bool:
            # The first connections have ended and every viewer is connected again.
            ended = await gateway_metric(http, gateway.url, "tokenrelay_viewer_streams_ended_total")
            streaming = await gateway_metric(http, gateway.url, "tokenrelay_viewers")
            return ended == len(viewers) and streaming == len(viewers)

        await wait_for(all_streaming_again)
        gateway.kill()
        await asyncio.gather(*readers, return_exceptions=True)
        await asyncio.to_thread(gateway.start)  # the in-process worker keeps streaming
        for viewer in viewers:
            while not viewer.finished:
                await viewer.read()
        expected = await upstream_text(http, upstream_url, job["id"])
        for viewer in viewers:
            ids = [event.id for event in viewer.events]
            assert len(ids) == len(set(ids))
            assert viewer.text == expected
    finally:
        gateway.kill()


async def test_gateway_sigterm_ends_streams_so_viewers_reconnect_elsewhere(
    settings: Settings,
    worker: RunningWorker,
    http: aiohttp.ClientSession,
    upstream_url: str,
    tmp_path: Path,
) -> None:
    old = gateway_process(settings, tmp_path).start()
    new = gateway_process(settings, tmp_path).start()
    try:
        async with http.post(
            f"{old.url}/v1/jobs", json={"prompt": "go\n#sim tokens=200 rate=80"}
        ) as response:
            job = await response.json()
        viewer = ResumingViewer(http, old.url + job["events_url"])
        reading = asyncio.create_task(viewer.read())

        async def streaming() -> bool:
            return len(viewer.events) > 3

        await wait_for(streaming)
        old.signal(signal.SIGTERM)
        await asyncio.wait_for(reading, timeout=5)  # the stream ends instead of hanging
        assert old.wait() == 0
        viewer.url = new.url + job["events_url"]
        while not viewer.finished:
            await viewer.read()
        assert viewer.text == await upstream_text(http, upstream_url, job["id"])
    finally:
        old.kill()
        new.kill()
