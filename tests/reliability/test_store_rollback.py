"""A store rollback is never a silent gap. Redis restarted from an older AOF holds less than
the gateway's feed handed out; the feed notices (offsets, and the stream's end after a
failure), every live viewer gets ``reset`` (``store_rollback``) and the stream as it now is,
and ends with exactly the job's output."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from service.cli.embedded_redis import RedisServer, free_port
from service.contract.events import DONE, RESET, TOKEN
from service.contract.keys import job_output_key, job_record_key
from service.contract.sse_decoder import SSEEvent
from service.contract.store.redis_client import connect
from service.gateway.app import create_app
from tests.conftest import RunningWorker, make_settings
from tests.jobs_api import wait_for, wait_until_ended
from tests.sse_client import ResumingViewer, read_stream, text_of

pytestmark = pytest.mark.slow


async def test_a_restart_from_an_older_aof_resets_every_live_viewer_to_the_jobs_output(
    tmp_path: Path, upstream_url: str, http: aiohttp.ClientSession
) -> None:
    data = tmp_path / "redis"
    server = RedisServer(data_dir=data, port=free_port(), extra_args=["--appendfsync", "always"])
    server.start()
    settings = make_settings(redis_url=server.url, upstream_url=upstream_url)
    redis = connect(server.url)
    try:
        async with TestClient(TestServer(await create_app(settings, redis))) as gateway:
            worker = RunningWorker(settings)
            try:
                # The first upstream call answers 429: the job runs with no output yet, the
                # moment the copy of the store is taken.
                response = await gateway.post(
                    "/v1/jobs",
                    json={"prompt": "zig\n#sim tokens=600 rate=60 fail=429 times=1"},
                )
                job = await response.json()

                async def running_without_output() -> bool:
                    status = await redis.hget(job_record_key(job["id"]), "status")
                    output = await redis.get(job_output_key(job["id"]))
                    return status == b"running" and output == b""

                await wait_for(running_without_output, within=10, interval=0.005)
                snapshot = tmp_path / "aof-copy"
                shutil.copytree(data / "appendonlydir", snapshot)

                # Tokens of the attempt that will be lost reach two live viewers.
                url = str(gateway.make_url(job["events_url"]))
                viewers = [ResumingViewer(http, url) for _ in range(2)]
                for viewer in viewers:
                    while sum(event.event == TOKEN for event in viewer.events) < 20:
                        await viewer.read(max_events=5)
                # Each viewer resumes once more and stays connected through the crash.
                live: list[list[SSEEvent]] = [[], []]
                readers = [
                    asyncio.create_task(
                        read_stream(http, url, last_event_id=viewer.last_id, sink=sink)
                    )
                    for viewer, sink in zip(viewers, live, strict=True)
                ]

                async def both_live() -> bool:
                    return all(any(e.event == TOKEN for e in sink) for sink in live)

                await wait_for(both_live, within=10)
                # Off the event loop, so the live viewers keep reading while Redis goes.
                await asyncio.to_thread(_restart_from, server, snapshot)
                record = await wait_until_ended(gateway, job["id"], within=60)
                readings = await asyncio.wait_for(asyncio.gather(*readers), timeout=30)
            finally:
                await worker.shutdown()
        assert record["status"] == "done"
        for viewer, reading in zip(viewers, readings, strict=True):
            # One connection from before the crash to the end: no reconnect was needed.
            assert reading.status == 200
            assert reading.events[-1].event == DONE
            resets = [event.data for event in reading.events if event.event == RESET]
            assert any("store_rollback" in data for data in resets), resets
            everything = viewer.events + reading.events
            assert text_of(everything) == record["output"]
    finally:
        await redis.aclose()
        server.stop()


def _restart_from(server: RedisServer, snapshot: Path) -> None:
    """Crash Redis and start it again from an older copy of its AOF."""
    server.stop(kill=True)
    shutil.rmtree(server.data_dir / "appendonlydir")
    shutil.copytree(snapshot, server.data_dir / "appendonlydir")
    server.start()
