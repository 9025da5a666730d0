"""A reconnect storm's reads: resumes of one job share the job record's read
(``SharedReads``), yet each answer is read after its caller arrived; and a resume's position
is checked against the feed's memory when it holds the stream up to there, else in Redis."""

from __future__ import annotations

import asyncio
import traceback
from typing import Any, cast

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestClient

from service.contract.events import DONE, RESET, TOKEN, StreamId, format_stream_id
from service.contract.keys import job_events_key
from service.contract.settings import Settings
from service.contract.sse_decoder import SSEDecoder
from service.contract.store.redis_client import AnyRedis
from service.gateway.api.events import job_state
from service.gateway.fanout import lane
from service.gateway.fanout.hub import FeedHub
from service.gateway.fanout.viewer_stream import stream_to_viewer
from service.gateway.shared_reads import SharedReads
from service.gateway.state import STATE
from tests.pipeline.test_race_table import Job, Probe

# ---- SharedReads on its own ----------------------------------------------------------------


class Store:
    """A value behind reads that wait for ``release()``: a read in flight, held open."""

    def __init__(self) -> None:
        self.value = 0
        self.sent: list[int] = []  # the value each read saw, as it was sent
        self.sending = asyncio.Event()
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail: Exception | None = None

    async def fetch(self) -> int:
        seen = self.value
        self.sent.append(seen)
        self.sending.set()
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return seen


async def test_callers_arriving_together_share_one_read() -> None:
    reads, store = SharedReads(), Store()
    answers = await asyncio.gather(*(reads.read("k", store.fetch) for _ in range(50)))
    assert answers == [0] * 50
    assert reads.reads == 1 and reads.shared == 49


async def test_a_read_in_flight_is_not_shared_with_a_caller_who_came_after_it_was_sent() -> None:
    reads, store = SharedReads(), Store()
    store.gate.clear()
    first = asyncio.create_task(reads.read("k", store.fetch))
    await store.sending.wait()  # the first read is out, held open
    store.value = 1  # a write that finished before the next callers arrive
    later = [asyncio.create_task(reads.read("k", store.fetch)) for _ in range(10)]
    await asyncio.sleep(0.01)
    assert store.sent == [0]  # one read in flight per key: the next waits for it
    store.gate.set()
    assert await first == 0
    assert await asyncio.gather(*later) == [1] * 10  # one read, sent after they came
    assert store.sent == [0, 1]
    assert (reads.reads, reads.shared) == (2, 9)


async def test_keys_are_read_apart() -> None:
    reads = SharedReads()
    stores = {"a": Store(), "b": Store()}
    stores["b"].value = 7
    answers = await asyncio.gather(
        *(reads.read(key, stores[key].fetch) for key in ("a", "b", "a", "b"))
    )
    assert answers == [0, 7, 0, 7]
    assert reads.reads == 2


async def test_an_error_reaches_every_caller_of_its_read_and_the_next_read_is_fresh() -> None:
    reads, store = SharedReads(), Store()
    store.fail = ConnectionError("redis went away")
    results = await asyncio.gather(
        *(reads.read("k", store.fetch) for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(result, ConnectionError) for result in results)
    # Each caller raised it from where the read failed (what is_redis_failure looks at),
    # not on top of the other callers' frames.
    frames = [frame.name for frame in traceback.extract_tb(results[-1].__traceback__)]
    assert "fetch" in frames and len(frames) < 10, frames
    store.fail = None
    assert await reads.read("k", store.fetch) == 0
    assert reads.reads == 2


async def test_a_caller_who_leaves_does_not_cancel_the_others_read() -> None:
    reads, store = SharedReads(), Store()
    store.gate.clear()
    leaving = asyncio.create_task(reads.read("k", store.fetch))
    staying = asyncio.create_task(reads.read("k", store.fetch))
    await asyncio.sleep(0.01)
    leaving.cancel()
    store.gate.set()
    assert await staying == 0
    with pytest.raises(asyncio.CancelledError):
        await leaving


# ---- the job record, on a real Redis --------------------------------------------------------


class HeldHmget:
    """The gateway's Redis client with ``HMGET`` replies held back while ``gate`` is clear:
    the read is done in Redis, its answer is on its way."""

    def __init__(self, redis: AnyRedis) -> None:
        self._redis = redis
        self.gate = asyncio.Event()
        self.gate.set()
        self.sent = 0
        self.answered = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._redis, name)

    async def hmget(self, *args: Any) -> Any:
        self.sent += 1
        reply = await self._redis.hmget(*args)
        self.answered.set()
        await self.gate.wait()
        return reply


async def test_shared_record_reads_see_a_write_that_finished_before_they_arrived(
    redis: AnyRedis, settings: Settings, gateway: TestClient[Any, Any]
) -> None:
    state = gateway.app[STATE]
    held = HeldHmget(redis)
    state.redis = cast(AnyRedis, held)
    job = await Job.start(redis, settings, tokens=2)
    held.gate.clear()
    early = asyncio.create_task(job_state(state, job.id))
    await held.answered.wait()  # its read is done in Redis ("running"), the answer held
    terminal = await job.done()  # finished before the next callers arrive
    late = [asyncio.create_task(job_state(state, job.id)) for _ in range(20)]
    await asyncio.sleep(0.01)
    held.gate.set()
    status, terminal_id = await early
    assert (status, terminal_id) == (b"running", None)
    for status, terminal_id in await asyncio.gather(*late):
        assert status == b"done"
        assert terminal_id == format_stream_id(terminal).encode()
    assert held.sent == 2  # the twenty shared one read, sent after the write


async def test_a_crowd_of_resumes_shares_record_reads_and_each_ends_exact(
    redis: AnyRedis, settings: Settings, gateway: TestClient[Any, Any], http: aiohttp.ClientSession
) -> None:
    state = gateway.app[STATE]
    job = await Job.start(redis, settings, tokens=4)
    position = job.ids[3]
    url = gateway.make_url(job.events_path)
    headers = {"Last-Event-ID": format_stream_id(position)}
    responses = await asyncio.gather(*(http.get(url, headers=headers) for _ in range(40)))
    assert [response.status for response in responses] == [200] * 40
    assert state.shared_reads.reads < 40  # requests that arrived together shared reads
    await job.tokens(2)
    terminal = await job.done()
    entries = await job.entries()
    expected = "".join(entry.text for entry in entries if entry.id > position)
    for response in responses:
        events = SSEDecoder().feed(await response.read())
        response.release()
        assert events[-1].event == DONE and events[-1].id == format_stream_id(terminal)
        text = "".join(orjson.loads(event.data)["text"] for event in events if event.event == TOKEN)
        assert text == expected
    # The record as it is now: a resume at the terminal gets 204 (a fresh read, not an old one).
    async with http.get(url, headers={"Last-Event-ID": format_stream_id(terminal)}) as response:
        assert response.status == 204


# ---- the position check ---------------------------------------------------------------------


class CountedXrange:
    """A Redis client counting the ``XRANGE`` calls on one job's stream."""

    def __init__(self, redis: AnyRedis, job_id: str) -> None:
        self._redis = redis
        self._key = job_events_key(job_id)
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._redis, name)

    async def xrange(self, key: Any, *args: Any, **kwargs: Any) -> Any:
        if key == self._key:
            self.calls += 1
        return await self._redis.xrange(key, *args, **kwargs)


async def _resume(
    redis: AnyRedis, hub: FeedHub, job: Job, position: StreamId, **kw: Any
) -> tuple[CountedXrange, Probe]:
    counted = CountedXrange(redis, job.id)
    probe = Probe()
    outcome = await stream_to_viewer(
        counted,  # type: ignore[arg-type]
        hub,
        job.id,
        position,
        probe,
        **kw,
    )
    assert outcome.reason == "terminal"
    return counted, probe


async def test_the_position_is_checked_in_the_feeds_memory_when_it_holds_it(
    redis: AnyRedis, settings: Settings
) -> None:
    job = await Job.start(redis, settings, tokens=4)
    terminal = await job.done()
    hub = FeedHub(redis, 64, history_limit=1000)
    try:
        # In memory: no XRANGE; an exact replay after the position.
        counted, probe = await _resume(redis, hub, job, job.ids[3], terminal_id=terminal)
        assert counted.calls == 0
        assert probe.events[0].event != RESET and probe.events[-1].event == DONE
        # Not in the stream, and memory can tell (before the cursor): reset, no XRANGE.
        counted, probe = await _resume(redis, hub, job, (1, 0), terminal_id=terminal)
        assert counted.calls == 0
        assert probe.events[0].event == RESET
        # An ended feed the job record does not confirm (no terminal_id given): Redis says.
        counted, probe = await _resume(redis, hub, job, job.ids[3], terminal_id=None)
        assert counted.calls == 1
        assert probe.events[0].event != RESET
    finally:
        await hub.stop()


async def test_the_position_is_checked_in_redis_when_memory_cannot_tell(
    redis: AnyRedis, settings: Settings
) -> None:
    job = await Job.start(redis, settings, tokens=4)
    terminal = await job.done()
    # No history kept (too long for this hub): Redis says, both ways.
    hub = FeedHub(redis, 64, history_limit=2)
    try:
        counted, probe = await _resume(redis, hub, job, job.ids[3], terminal_id=terminal)
        assert counted.calls >= 1
        assert probe.events[0].event != RESET and probe.events[-1].event == DONE
        counted, probe = await _resume(redis, hub, job, (1, 0), terminal_id=terminal)
        assert counted.calls >= 1
        assert probe.events[0].event == RESET
    finally:
        await hub.stop()
    # Past the cursor (another gateway may be ahead): Redis says.
    hub = FeedHub(redis, 64, history_limit=1000)
    try:
        past = (terminal[0] + 1_000, 0)
        counted, probe = await _resume(redis, hub, job, past, terminal_id=None)
        assert counted.calls == 1
        assert probe.events[0].event == RESET and probe.events[-1].event == DONE
        assert probe.events[1].id == format_stream_id(job.ids[0])  # from the very first entry
    finally:
        await hub.stop()


# ---- the lane's pause while a crowd joins ---------------------------------------------------


def test_a_lane_pauses_longer_while_a_crowd_joins_and_only_then() -> None:
    light = lane.PAUSE_AFTER_SECONDS / 2
    heavy = 0.01
    # Light hand-out: never a pause, crowd or not (small fan-outs keep their latency).
    assert lane.pause_after(light, 0) == lane.pause_after(light, 10_000) == 0.0
    # Heavy hand-out: as long again, capped; a crowd joining: longer, capped higher.
    assert lane.pause_after(heavy, lane.JOIN_BURST - 1) == heavy
    assert lane.pause_after(1.0, 0) == lane.MAX_PAUSE_SECONDS
    assert lane.pause_after(heavy, lane.JOIN_BURST) == heavy * lane.JOIN_BURST_FACTOR
    assert lane.pause_after(1.0, lane.JOIN_BURST) == lane.MAX_JOIN_BURST_PAUSE


async def test_joins_are_counted_per_feed_and_taken_by_its_lane(
    redis: AnyRedis, settings: Settings
) -> None:
    job = await Job.start(redis, settings, tokens=1)
    hub = FeedHub(redis, 64, history_limit=1000)
    try:
        subscriptions = [await hub.subscribe(job.id) for _ in range(3)]
        feed = subscriptions[0].feed
        assert feed.joins == 3
        reader = lane.LaneReader(redis, 0, "test")
        reader._feeds[feed.key] = feed  # as add() does, without starting its reads
        assert reader._take_joins() == 3
        assert reader._take_joins() == 0 and feed.joins == 0
        for subscription in subscriptions:
            hub.unsubscribe(subscription)
    finally:
        await hub.stop()
