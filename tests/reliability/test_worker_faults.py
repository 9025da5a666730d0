"""Worker faults: a paused worker is fenced out, a poison job ends failed and dead-lettered."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from service.contract.events import DONE, RESET, TOKEN
from service.contract.keys import QUEUE_GROUP, dead_letter_key, queue_keys
from service.contract.settings import Settings
from tests.conftest import RunningWorker
from tests.jobs_api import submit, upstream_requests, wait_for, wait_until_ended
from tests.processes import worker_process
from tests.sse_client import ResumingViewer, read_stream

pytestmark = pytest.mark.slow


async def _attempt(gateway: TestClient[Any, Any], job_id: str) -> int:
    response = await gateway.get(f"/v1/jobs/{job_id}")
    attempt: int = (await response.json())["attempt"]
    return attempt


async def test_worker_paused_past_its_lease_cannot_interleave_stale_tokens(
    gateway: TestClient[Any, Any],
    settings: Settings,
    http: aiohttp.ClientSession,
    upstream_url: str,
    tmp_path: Path,
) -> None:
    paused = worker_process(settings, tmp_path, "paused").start()
    try:
        job = await submit(gateway, "c++ matrix\n#sim tokens=400 rate=80 unicode=1")
        url = str(gateway.make_url(job["events_url"]))
        early = await read_stream(http, url, max_events=5)
        assert any(event.event == TOKEN for event in early.events)
        paused.signal(signal.SIGSTOP)
        replacement = RunningWorker(settings)
        try:

            async def taken_over() -> bool:
                return await _attempt(gateway, job["id"]) == 2

            await wait_for(taken_over, within=15)
            paused.signal(signal.SIGCONT)  # wakes with tokens it still wants to write
            viewer = ResumingViewer(http, url, events=list(early.events))
            while not viewer.finished:
                await viewer.read()
            assert viewer.events[-1].event == DONE
            requests = await upstream_requests(http, upstream_url, job["id"])
            attempt_two = [r for r in requests if r["headers"]["x-tokenrelay-attempt"] == "2"]
            assert viewer.text == attempt_two[-1]["text"]
            after_reset = viewer.events[
                max(i for i, e in enumerate(viewer.events) if e.event == RESET) :
            ]
            assert RESET not in [e.event for e in after_reset[1:]]
            record = await wait_until_ended(gateway, job["id"])
            assert record["attempt"] == 2
            assert record["output"] == attempt_two[-1]["text"]

            async def paused_worker_let_go() -> bool:
                requests = await upstream_requests(http, upstream_url, job["id"])
                return requests[0]["status"] in ("client_disconnected", "failed", "completed")

            await wait_for(paused_worker_let_go, within=10)
        finally:
            await replacement.shutdown()
    finally:
        paused.signal(signal.SIGCONT)
        paused.kill()


async def test_a_job_that_keeps_killing_workers_fails_and_is_dead_lettered(
    gateway: TestClient[Any, Any],
    redis: Redis,
    settings: Settings,
    http: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    poison_settings = settings.model_copy(update={"max_deliveries": 2})
    job = await submit(gateway, "poison\n#sim tokens=2000 rate=40")
    for round_ in (1, 2):
        doomed = worker_process(poison_settings, tmp_path, f"doomed-{round_}").start()
        try:

            async def running(expected: int = round_) -> bool:
                return await _attempt(gateway, job["id"]) == expected

            await wait_for(running, within=15)
        finally:
            doomed.kill()
    survivor = RunningWorker(poison_settings)
    try:
        record = await wait_until_ended(gateway, job["id"], within=20)
    finally:
        await survivor.shutdown()
    assert record["status"] == "failed"
    assert record["error"]["code"] == "worker_lost"
    dead = await redis.xrange(dead_letter_key())
    assert [(fields or {}).get(b"job") for _, fields in dead or []] == [job["id"].encode()]
    reading = await read_stream(http, str(gateway.make_url(job["events_url"])))
    assert reading.events[-1].event == "failed"
    pending = [await redis.xpending(queue, QUEUE_GROUP) for queue in queue_keys()]
    assert sum(p["pending"] for p in pending) == 0
