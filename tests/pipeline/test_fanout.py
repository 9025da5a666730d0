"""Fan-out: one reader per job per gateway process, many gateways with the same ids, and a
slow viewer that is cut off without holding the others back."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from service.contract.keys import job_events_key
from service.contract.settings import Settings
from service.gateway.app import create_app
from service.gateway.fanout.hub import FeedHub
from service.gateway.state import STATE
from tests.conftest import RunningWorker
from tests.jobs_api import submit, upstream_text, wait_for
from tests.sse_client import ResumingViewer, read_stream, text_of


@pytest.fixture
async def second_gateway(settings: Settings, redis: Redis) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(await create_app(settings, redis))) as client:
        yield client


async def test_viewers_hopping_between_gateways_see_identical_ids_and_exact_text(
    gateway: TestClient[Any, Any],
    second_gateway: TestClient[Any, Any],
    worker: RunningWorker,
    http: aiohttp.ClientSession,
    upstream_url: str,
) -> None:
    """Each reconnect goes to the other gateway, whose own reader may be ahead or behind."""
    job = await submit(gateway, "scala actor\n#sim tokens=300 rate=400 unicode=1")
    urls = [str(gw.make_url(job["events_url"])) for gw in (gateway, second_gateway)]
    rng = random.Random(3)

    async def hop() -> ResumingViewer:
        viewer = ResumingViewer(http, urls[0])
        while not viewer.finished:
            viewer.url = urls[viewer.connections % 2]
            await viewer.read(max_events=rng.randint(1, 8))
        return viewer

    viewers = await asyncio.gather(*(hop() for _ in range(8)))
    expected = await upstream_text(http, upstream_url, job["id"])
    for viewer in viewers:
        assert viewer.text == expected
        ids = [event.id for event in viewer.events]
        assert len(ids) == len(set(ids))
    whole = [await read_stream(http, url) for url in urls]
    assert [e.id for e in whole[0].events] == [e.id for e in whole[1].events]
    assert [e.data for e in whole[0].events] == [e.data for e in whole[1].events]


async def test_one_reader_per_job_however_many_viewers(
    gateway: TestClient[Any, Any], worker: RunningWorker, http: aiohttp.ClientSession
) -> None:
    job = await submit(gateway, "zig\n#sim tokens=200 rate=100")
    url = str(gateway.make_url(job["events_url"]))
    readers = [asyncio.create_task(read_stream(http, url)) for _ in range(25)]
    hub = gateway.app[STATE].hub

    async def all_connected() -> bool:
        return bool(hub.viewer_count(job["id"]) == 25)

    await wait_for(all_connected)
    assert hub.feed_count == 1
    readings = await asyncio.gather(*readers)
    assert len({text_of(reading.events) for reading in readings}) == 1
    # The finished job's feed is kept a while for late viewers, with nobody on it.
    assert hub.feed_count == 1 and hub.viewer_count(job["id"]) == 0


async def test_late_viewers_of_a_finished_job_replay_from_memory(
    gateway: TestClient[Any, Any],
    worker: RunningWorker,
    http: aiohttp.ClientSession,
    upstream_url: str,
) -> None:
    job = await submit(gateway, "a lexer in ocaml\n#sim tokens=120 rate=400 unicode=1")
    url = str(gateway.make_url(job["events_url"]))
    first = await read_stream(http, url)  # live: the feed follows the job to its end
    registry = gateway.app[STATE].metrics.registry

    def ranges_read() -> float:
        name = "tokenrelay_redis_command_duration_seconds_count"
        return registry.get_sample_value(name, {"command": "XRANGE"}) or 0.0

    before = ranges_read()
    later = await asyncio.gather(*(read_stream(http, url) for _ in range(6)))
    resumed = await read_stream(http, url, last_event_id=first.events[len(first.events) // 2].id)
    expected = await upstream_text(http, upstream_url, job["id"])
    assert text_of(first.events) == expected
    assert all(text_of(reading.events) == expected for reading in later)
    assert text_of(first.events[: len(first.events) // 2 + 1] + resumed.events) == expected
    # Nothing asks Redis: the replays came from memory, and so did the resume's check that
    # its position exists (the feed holds the whole stream).
    assert ranges_read() - before == 0


async def test_a_viewer_that_stops_reading_is_cut_off_and_others_get_everything(
    redis: Redis,
) -> None:
    """The feed never waits for a viewer: a full queue ends that viewer's stream."""
    job_id = "fanoutslowviewer01"
    key = job_events_key(job_id)
    await redis.xadd(key, {"t": "status", "d": '{"status":"running","attempt":1}'})
    hub = FeedHub(redis, viewer_limit=8)
    slow_subscription = await hub.subscribe(job_id)
    fast_subscription = await hub.subscribe(job_id)
    slow, fast = slow_subscription.viewer, fast_subscription.viewer
    cursor = fast_subscription.cursor
    received = []

    async def drain_fast() -> None:
        while True:
            fast.waiter = asyncio.get_running_loop().create_future()
            await fast.waiter
            received.extend(fast.batches)
            fast.batches.clear()

    draining = asyncio.create_task(drain_fast())
    for n in range(40):
        await redis.xadd(key, {"t": "token", "d": f'{{"text":"{n},"}}'})

        async def delivered(count: int = n + 1) -> bool:
            return sum(len(batch.entries) for batch in received) == count

        await wait_for(delivered)  # one read per write: each is its own batch
    assert slow.overflowed
    assert len(slow.batches) == 0
    assert received[0].prev == cursor
    assert all(a.last == b.prev for a, b in itertools.pairwise(received))
    draining.cancel()
    hub.unsubscribe(slow_subscription)
    hub.unsubscribe(fast_subscription)
    await hub.stop()


async def test_idle_stream_gets_pings(gateway: TestClient[Any, Any]) -> None:
    job = await submit(gateway, "queued, no worker")
    async with gateway.session.get(gateway.make_url(job["events_url"])) as response:
        seen = b""
        async with asyncio.timeout(5):
            while b": ping\n\n" not in seen:
                seen += await response.content.readany()
    assert seen.startswith(b"retry: 200\n\n")


async def test_sweeper_pings_quiet_viewers_and_drops_stuck_writes() -> None:
    """One sweeper replaces a timer per viewer: pings after a quiet spell, and a write stuck
    longer than the send timeout (or still stuck after the viewer was cut off) is aborted."""
    from service.gateway.fanout.viewer import Viewer

    aborted: list[str] = []
    waiting = asyncio.get_running_loop().create_future()
    quiet = Viewer(limit=8, last_write=100.0, waiter=waiting)
    quiet.sweep(now=116.0, ping_seconds=15.0, send_timeout=30.0)
    assert quiet.needs_ping and waiting.done()

    stuck = Viewer(limit=8, write_started=100.0, end=_End(aborted, "x"))
    stuck.sweep(now=129.0, ping_seconds=15.0, send_timeout=30.0)
    assert aborted == []
    stuck.sweep(now=131.0, ping_seconds=15.0, send_timeout=30.0)
    assert aborted == ["x"]

    cut = Viewer(limit=8, write_started=100.0, overflowed=True, end=_End(aborted, "cut"))
    cut.sweep(now=100.5, ping_seconds=15.0, send_timeout=30.0)
    assert aborted == ["x", "cut"]
    assert not cut.needs_ping


class _End:
    """A viewer's client end that only notes its aborts."""

    def __init__(self, aborted: list[str], name: str) -> None:
        self.aborted = aborted
        self.name = name

    async def write(self, data: bytes) -> None:
        raise AssertionError("not written to here")

    def abort(self) -> None:
        self.aborted.append(self.name)


class _SlowLoads:
    """The hub's Redis, with feed loads (XRANGE) held until ``release`` is set."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self.release = asyncio.Event()

    async def xrange(self, *args: Any, **kwargs: Any) -> Any:
        await self.release.wait()
        return await self._redis.xrange(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._redis, name)


async def test_a_viewer_whose_feed_creator_leaves_during_the_load_still_gets_the_job(
    redis: Redis,
) -> None:
    """The first viewer leaves while the feed loads; the second, waiting on the same load,
    must not be left on a feed nobody reads (it would get pings and never data)."""
    job_id = "fanoutleftload01"
    key = job_events_key(job_id)
    await redis.xadd(key, {"t": "status", "d": '{"status":"running","attempt":1}'})
    slow = _SlowLoads(redis)
    hub = FeedHub(slow, viewer_limit=8)  # type: ignore[arg-type]
    first = asyncio.create_task(hub.subscribe(job_id))
    second = asyncio.create_task(hub.subscribe(job_id))
    await asyncio.sleep(0)  # both wait on the feed's load
    await asyncio.sleep(0)
    first.cancel()
    slow.release.set()
    subscription = await asyncio.wait_for(second, timeout=5)
    assert hub.viewer_count(job_id) == 1
    await redis.xadd(key, {"t": "token", "d": '{"text":"x"}'})

    async def delivered() -> bool:
        return any(batch.entries for batch in subscription.viewer.batches)

    await wait_for(delivered, within=10)
    hub.unsubscribe(subscription)
    await hub.stop()
