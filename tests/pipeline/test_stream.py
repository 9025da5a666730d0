"""The event stream: a job's events reach every viewer exactly, live and on replay."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient, TestServer

from service.contract.events import DONE, STATUS, TOKEN
from service.contract.settings import Settings
from service.contract.store.redis_client import AnyRedis
from service.gateway.app import create_app
from tests.conftest import RunningWorker
from tests.jobs_api import submit, upstream_text, wait_until_ended
from tests.sse_client import read_stream, text_of


async def test_viewer_gets_exactly_the_upstream_text(
    gateway: TestClient[Any, Any],
    worker: RunningWorker,
    http: aiohttp.ClientSession,
    upstream_url: str,
) -> None:
    job = await submit(gateway, "write a python quicksort\n#sim tokens=80 unicode=1")
    reading = await read_stream(http, str(gateway.make_url(job["events_url"])))
    assert reading.status == 200
    assert reading.retry == 200
    kinds = [event.event for event in reading.events]
    assert kinds[0] == STATUS and kinds[-1] == DONE
    assert TOKEN in kinds
    expected = await upstream_text(http, upstream_url, job["id"])
    assert text_of(reading.events) == expected
    record = await wait_until_ended(gateway, job["id"])
    assert record["output"] == expected
    assert record["status"] == "done"
    assert record["finish_reason"] == "stop"
    assert record["usage"]["completion_tokens"] > 0


async def test_every_event_carries_its_stream_entry_id(
    gateway: TestClient[Any, Any], worker: RunningWorker, http: aiohttp.ClientSession
) -> None:
    job = await submit(gateway, "go http server\n#sim tokens=30")
    reading = await read_stream(http, str(gateway.make_url(job["events_url"])))
    ids = [event.id for event in reading.events]
    assert all(i is not None and "-" in i for i in ids)
    assert len(set(ids)) == len(ids)
    raw = await worker_stream_ids(gateway, job["id"])
    assert set(ids) <= set(raw)


async def worker_stream_ids(gateway: TestClient[Any, Any], job_id: str) -> list[str]:
    from service.contract.keys import job_events_key
    from service.gateway.state import STATE

    redis = gateway.app[STATE].redis
    return [entry_id.decode() for entry_id, _ in await redis.xrange(job_events_key(job_id))]


async def test_a_kept_alive_connection_serves_on_after_a_stream_and_idles_out(
    settings: Settings, redis: AnyRedis, worker: RunningWorker
) -> None:
    """The stream stops aiohttp's keep-alive timer while it runs: afterwards the connection
    still takes the next request, and still closes once idle for ``keepalive_timeout``."""
    server = TestServer(await create_app(settings, redis))
    await server.start_server(keepalive_timeout=0.5)
    async with TestClient(server) as gateway:
        job = await submit(gateway, "a short one\n#sim tokens=5")
        await wait_until_ended(gateway, job["id"])
        reader, writer = await asyncio.open_connection(server.host, server.port)
        try:
            for path in (job["events_url"], "/healthz"):
                writer.write(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
                async with asyncio.timeout(5):
                    head = await reader.readuntil(b"\r\n\r\n")
                    assert head.startswith(b"HTTP/1.1 200"), head
                    if b"chunked" in head.lower():
                        body = await reader.readuntil(b"\r\n0\r\n\r\n")
                        assert b"event: done" in body
                    else:
                        length = int(head.lower().split(b"content-length: ")[1].split(b"\r")[0])
                        await reader.readexactly(length)
            async with asyncio.timeout(5):
                assert await reader.read() == b""  # closed by the server, idle
        finally:
            writer.close()
