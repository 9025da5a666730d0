"""The streams clients create under ``/v1/stream/``, beyond the official suite: one hash
slot per stream, and one Redis reader per stream per gateway however many live readers."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient
from redis.crc import key_slot

from service.contract.keys import durable_stream_keys
from service.gateway.durable_streams import STREAMS
from service.gateway.durable_streams.watch import StreamWatch
from tests.jobs_api import wait_for


def test_a_streams_keys_share_one_slot() -> None:
    for name in ("chat/room-1", "a{b}c", "x" * 500, "é/ü"):
        slots = {key_slot(key.encode()) for key in durable_stream_keys(name)}
        assert len(slots) == 1, name


async def test_live_readers_of_a_stream_share_one_redis_reader(
    gateway: TestClient[Any, Any],
) -> None:
    url = "/v1/stream/shared-feed"
    created = await gateway.put(url, data=b"hello", headers={"Content-Type": "text/plain"})
    assert created.status == 201
    tail = created.headers["Stream-Next-Offset"]
    watch: StreamWatch = gateway.app[STREAMS].watch

    async def long_poll() -> tuple[int, str]:
        response = await gateway.get(url, params={"offset": tail, "live": "long-poll"})
        return response.status, await response.text()

    readers = [asyncio.create_task(long_poll()) for _ in range(6)]

    async def all_waiting() -> bool:
        return watch.waiting == 6

    await wait_for(all_waiting)
    assert watch.readers == 1
    appended = await gateway.post(url, data=b" world", headers={"Content-Type": "text/plain"})
    assert appended.status == 204
    assert await asyncio.gather(*readers) == [(200, " world")] * 6
    assert watch.readers == 0


async def test_a_fork_reads_its_source_across_slots(gateway: TestClient[Any, Any]) -> None:
    source, fork = "/v1/stream/fork-source", "/v1/stream/fork-of-source"
    await gateway.put(source, data=b"abc", headers={"Content-Type": "text/plain"})
    head = await gateway.head(source)
    at = head.headers["Stream-Next-Offset"]
    fork_headers = {"Stream-Forked-From": source, "Stream-Fork-Offset": at}
    made = await gateway.put(fork, headers={**fork_headers, "Content-Type": "text/plain"})
    assert made.status == 201
    await gateway.post(source, data=b"-source", headers={"Content-Type": "text/plain"})
    await gateway.post(fork, data=b"-fork", headers={"Content-Type": "text/plain"})
    assert await (await gateway.get(fork)).text() == "abc-fork"
    assert (await gateway.delete(source)).status == 204  # soft: the fork still reads it
    assert (await gateway.get(source)).status == 410
    assert await (await gateway.get(fork)).text() == "abc-fork"
    assert (await gateway.delete(fork)).status == 204  # and the source goes with it
    assert (await gateway.head(source)).status == 404
