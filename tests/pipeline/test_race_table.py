"""The viewer's race, row by row: every situation of the table in ARCHITECTURE.md ("The viewer's
race (who wins)") driven through the real code, on a real Redis, with events written the way
the worker writes them (a fenced attempt, then numbered ``append_event.lua`` calls).

Each row asserts what the viewer does and why it is exact: the text is the job's text, with no
gap and no repeat, and the event ids strictly increase. A last test reads the table from
ARCHITECTURE.md and checks that the rows here are its rows, each once, in its order.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

import service.gateway.fanout.replay as replay_module
from service.contract.events import (
    DONE,
    RESET,
    TERMINAL,
    TOKEN,
    ZERO_ID,
    StreamId,
    format_stream_id,
    parse_stream_id,
)
from service.contract.jobs import JobRequest, new_job_id, now_ms
from service.contract.keys import job_events_key, job_keys
from service.contract.settings import Settings
from service.contract.sse_decoder import SSEDecoder, SSEEvent
from service.contract.store.redis_client import AnyRedis
from service.contract.store.scripts import Scripts, as_text
from service.contract.store.submit import create_job
from service.gateway.app import create_app
from service.gateway.fanout.batch import Batch
from service.gateway.fanout.feed import JobFeed
from service.gateway.fanout.frames import PING, Entry, entries_from_reply
from service.gateway.fanout.hub import FeedHub, Subscription
from service.gateway.fanout.viewer_stream import StreamOutcome, stream_to_viewer
from service.gateway.state import STATE
from tests.sse_client import Reading, read_stream

ARCHITECTURE = Path(__file__).resolve().parents[2] / "ARCHITECTURE.md"
RACE_HEADING = "## The viewer's race (who wins)"

# Every row of the table, by its "situation" cell, and the id of its case below.
TABLE = {
    "`P < C`": "behind_the_cursor",
    "`P == C`": "at_the_cursor",
    "`P > C` (another gateway was ahead)": "ahead_of_the_cursor_batch_straddles",
    "`P` not in the stream": "unknown_position",
    "job ended at or before `P`": "ended_at_or_before_position",
    "the job ends while replaying": "job_ends_during_replay",
    "viewer too slow (queue full)": "viewer_too_slow",
    "client gone": "client_gone",
    "gateway SIGTERM": "gateway_sigterm",
    "no data for `PING_SECONDS`": "quiet_connection_pings",
    "a write stuck past `SEND_TIMEOUT_SECONDS`": "stuck_write_aborted",
    "the feed is dropped and re-created while its lane's read is blocked": (
        "feed_recreated_during_blocked_read"
    ),
}

HISTORY = 20_000  # a feed's history limit that holds every job here (replays from memory)
ROW_SECONDS = 30.0


async def until(condition: Callable[[], bool], what: str, *, within: float = 10.0) -> None:
    """Wait until ``condition()`` holds, polling; fail after ``within`` seconds."""
    try:
        async with asyncio.timeout(within):
            while True:
                if condition():
                    return
                await asyncio.sleep(0.005)
    except TimeoutError:
        raise AssertionError(f"not within {within} s: {what}") from None


async def read_by(feed: JobFeed, entry: StreamId) -> None:
    """Wait until the feed has read (and handed out) ``entry``."""
    await until(lambda: feed.cursor >= entry, f"the feed read {entry}")


def event_id(event: SSEEvent) -> StreamId:
    assert event.id is not None, f"an event without an id: {event}"
    return parse_stream_id(event.id)


class Job:
    """A running job whose events are written the way the worker writes them: an attempt
    started by ``start_attempt.lua``, then fenced appends (``append_event.lua``) with
    consecutive ``seq``, one token per entry."""

    def __init__(
        self, redis: AnyRedis, scripts: Scripts, settings: Settings, job_id: str, attempt: int
    ) -> None:
        self._redis = redis
        self._scripts = scripts
        self._settings = settings
        self.id = job_id
        self.attempt = attempt
        self._seq = 0
        self.ids: list[StreamId] = []  # every entry of the stream, in order

    @classmethod
    async def start(cls, redis: AnyRedis, settings: Settings, tokens: int) -> Job:
        scripts = Scripts.register(redis)
        job_id = new_job_id()
        request = JobRequest(prompt="the race table")
        assert await create_job(redis, scripts, settings, request, job_id)
        reply = await scripts.start_attempt(
            keys=job_keys(job_id),
            args=["race-table-worker", now_ms(), "", settings.max_deliveries, "", 60, ""],
            client=redis,
        )
        assert as_text(reply[0]) == "ok", reply
        job = cls(redis, scripts, settings, job_id, int(reply[1]))
        job.ids = [entry.id for entry in await job.entries()]
        assert len(job.ids) == 2  # status queued, status running
        for _ in range(tokens):
            await job.token()
        return job

    @property
    def last(self) -> StreamId:
        return self.ids[-1]

    @property
    def events_path(self) -> str:
        return f"/v1/jobs/{self.id}/events"

    async def token(self) -> StreamId:
        # Distinct texts, multi-byte included: a gap or a repeat changes the text.
        text = f"«{len(self.ids)}é» "
        return await self._append(TOKEN, {"text": text}, text, {})

    async def tokens(self, count: int) -> list[StreamId]:
        return [await self.token() for _ in range(count)]

    async def done(self) -> StreamId:
        data = {"finish_reason": "stop", "usage": None}
        return await self._append(DONE, data, "", {"finish_reason": "stop"})

    async def _append(
        self, kind: str, data: dict[str, Any], text: str, record: dict[str, str]
    ) -> StreamId:
        self._seq += 1
        reply = await self._scripts.append_event(
            keys=job_keys(self.id),
            args=[
                self.attempt,
                self._seq,
                kind,
                orjson.dumps(data).decode(),
                text,
                now_ms(),
                self._settings.retention_seconds,
                orjson.dumps(record).decode(),
            ],
            client=self._redis,
        )
        assert as_text(reply[0]) == "ok", reply
        entry_id = parse_stream_id(as_text(reply[1]))
        self.ids.append(entry_id)
        return entry_id

    async def entries(self) -> list[Entry]:
        """The job's stream as Redis holds it: the truth every viewer must match."""
        return entries_from_reply(await self._redis.xrange(job_events_key(self.id)))


class RecordingHub(FeedHub):
    """The real hub, remembering each subscription it handed out (the cursor ``C`` a viewer
    joined at, its feed and its viewer), so a row can see which case of the table it is in."""

    def __init__(self, redis: AnyRedis, viewer_limit: int, history_limit: int, **kw: Any) -> None:
        super().__init__(redis, viewer_limit, history_limit, **kw)
        self.joined: list[Subscription] = []

    async def subscribe(self, job_id: str, terminal_id: StreamId | None = None) -> Subscription:
        subscription = await super().subscribe(job_id, terminal_id)
        self.joined.append(subscription)  # no await since the join: the cursor is C
        return subscription

    async def joined_at(self, index: int) -> Subscription:
        await until(lambda: len(self.joined) > index, f"subscription {index} made")
        return self.joined[index]


class HeldReads:
    """The hub's Redis client with the replies of its lane reads (``XREAD``) held back while
    ``hold`` is on: a lane read that is blocked, or slow to come back, at a chosen moment.
    Every command still runs on the real Redis; only when XREAD's reply reaches the lane moves."""

    def __init__(self, redis: AnyRedis) -> None:
        self._redis = redis
        self._released = asyncio.Event()
        self._released.set()
        self.issued: list[dict[str, str]] = []  # each read's streams and cursors
        self.held: list[tuple[dict[str, str], list[tuple[str, list[Entry]]]]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._redis, name)

    def hold(self) -> None:
        self._released.clear()

    def release(self) -> None:
        self._released.set()

    async def xread(self, streams: dict[Any, Any], **options: Any) -> Any:
        asked = {str(key): str(cursor) for key, cursor in streams.items()}
        self.issued.append(asked)
        reply: Any = await self._redis.xread(streams, **options)
        if not self._released.is_set():
            got = [(raw_key.decode(), entries_from_reply(raw)) for raw_key, raw in reply or ()]
            self.held.append((asked, got))
            await self._released.wait()
        return reply

    def held_entries(self, job: Job) -> list[tuple[StreamId, list[StreamId]]]:
        """For each held reply with entries of ``job``: the cursor it was read from, and the
        entry ids it returned."""
        key = job_events_key(job.id)
        return [
            (parse_stream_id(asked[key]), [entry.id for entry in entries])
            for asked, got in self.held
            for got_key, entries in got
            if got_key == key
        ]


class Probe:
    """The viewer's end of the connection for ``stream_to_viewer``: what it received, write by
    write. With ``hold`` cleared, writes wait (a client that stopped reading); ``abort`` drops
    the connection like ``transport.abort()``: a waiting write fails."""

    def __init__(self) -> None:
        self.hold = asyncio.Event()
        self.hold.set()
        self.waiting = False
        self.calls: list[float] = []  # when each write started
        self.writes: list[bytes] = []  # each completed write
        self.events: list[SSEEvent] = []
        self.aborted_at: float | None = None
        self.aborted_by: str | None = None
        self._decoder = SSEDecoder()

    async def write(self, data: bytes) -> None:
        self.calls.append(time.monotonic())
        if not self.hold.is_set():
            self.waiting = True
            await self.hold.wait()
            self.waiting = False
        if self.aborted_at is not None:
            raise ConnectionResetError("the connection was aborted")
        self.writes.append(data)
        self.events += self._decoder.feed(data)

    def abort(self) -> None:
        task = asyncio.current_task()
        self.aborted_by = task.get_name() if task is not None else None
        self.aborted_at = time.monotonic()
        self.hold.set()

    @property
    def body(self) -> bytes:
        return b"".join(self.writes)

    @property
    def last_id(self) -> StreamId | None:
        return event_id(self.events[-1]) if self.events else None

    @property
    def pings(self) -> int:
        return self.writes.count(PING)


class Connection:
    """One SSE response from the gateway, read incrementally."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        assert response.status == 200, response.status
        self.response = response
        self.body = b""
        self.events: list[SSEEvent] = []
        self._decoder = SSEDecoder()

    async def _read(self) -> bool:
        chunk = await self.response.content.readany()
        self.body += chunk
        self.events += self._decoder.feed(chunk)
        return bool(chunk)

    async def read_until(self, entry_id: StreamId) -> None:
        """Read until an event with id ``entry_id`` (or later) arrived."""
        async with asyncio.timeout(10):
            while not (self.events and event_id(self.events[-1]) >= entry_id):
                assert await self._read(), "the stream ended early"

    async def read_to_end(self) -> None:
        async with asyncio.timeout(10):
            while await self._read():
                pass
        self.events += self._decoder.finish()


class Race:
    """What every row gets: the fixtures, and its own hubs and viewer tasks (stopped after)."""

    def __init__(
        self,
        redis: AnyRedis,
        settings: Settings,
        gateway: TestClient[Any, Any],
        http: aiohttp.ClientSession,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        self.redis = redis
        self.settings = settings
        self.gateway = gateway
        self.http = http
        self.monkeypatch = monkeypatch
        self.exact_checks = 0
        self._hubs: list[FeedHub] = []
        self._tasks: list[asyncio.Task[StreamOutcome]] = []

    async def job(self, tokens: int = 0) -> Job:
        return await Job.start(self.redis, self.settings, tokens)

    def hub(
        self,
        *,
        redis: AnyRedis | HeldReads | None = None,
        viewer_limit: int = 64,
        history_limit: int = HISTORY,
        ping_seconds: float = 15.0,
        send_timeout: float = 30.0,
    ) -> RecordingHub:
        """A gateway process's hub of its own (as ``create_app`` builds it)."""
        client = self.redis if redis is None else cast(AnyRedis, redis)
        hub = RecordingHub(
            client,
            viewer_limit,
            history_limit,
            ping_seconds=ping_seconds,
            send_timeout=send_timeout,
        )
        self._hubs.append(hub)
        return hub

    def stream(
        self, hub: FeedHub, job: Job, position: StreamId, probe: Probe, **kw: Any
    ) -> asyncio.Task[StreamOutcome]:
        """A viewer resuming at ``position``: the events handler's own call."""
        task = asyncio.create_task(stream_to_viewer(self.redis, hub, job.id, position, probe, **kw))
        self._tasks.append(task)
        return task

    def gateway_hub(self) -> FeedHub:
        hub: FeedHub = self.gateway.app[STATE].hub
        return hub

    def gateway_metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        metrics = self.gateway.app[STATE].metrics
        metrics.flush()  # as a scrape of /metrics does
        return metrics.registry.get_sample_value(name, labels or {}) or 0.0

    async def resume_over_http(self, job: Job, last_event_id: StreamId | None) -> Reading:
        """A client reconnecting to the gateway from its last event id."""
        url = str(self.gateway.make_url(job.events_path))
        position = None if last_event_id is None else format_stream_id(last_event_id)
        reading = await read_stream(self.http, url, last_event_id=position)
        assert reading.status == 200
        return reading

    def expect_exact(
        self, events: list[SSEEvent], entries: list[Entry], *, after: StreamId, ended: bool = True
    ) -> None:
        """``events`` are exactly the stream's entries after ``after``: ids strictly increase,
        each event stands for the entries since the previous one (a token event for a run of
        tokens, with their text joined; any other event for its own entry), nothing is missing
        or repeated; and with ``ended``, the last event is the job's terminal entry."""
        self.exact_checks += 1
        assert events, "no events"
        previous = after
        for event in events:
            current = event_id(event)
            assert current > previous, f"id {event.id} does not follow {previous}"
            covered = [entry for entry in entries if previous < entry.id <= current]
            assert covered and covered[-1].id == current, f"{event.id} is not an entry"
            if event.event == TOKEN:
                assert all(entry.kind == TOKEN for entry in covered), (event, covered)
                text = "".join(entry.text for entry in covered)
                assert orjson.loads(event.data)["text"] == text, (event, covered)
            else:
                assert len(covered) == 1, f"{event.event} {event.id} skips {covered[:-1]}"
                assert (event.event, event.data.encode()) == (covered[0].kind, covered[0].data)
            previous = current
        if ended:
            assert entries[-1].terminal
            assert previous == entries[-1].id
            assert events[-1].event in TERMINAL

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for hub in self._hubs:
            await hub.stop()


# ---- the rows, in the table's order ---------------------------------------------------------


async def behind_the_cursor(race: Race) -> None:
    """``P < C``: replays ``(P, C]`` (from the feed's memory, else from Redis with XRANGE),
    then takes batches; exact because batches start at ``C``."""
    await _replay_then_batches(race, HISTORY)
    # A history too long to keep in memory: the replay reads Redis, in pages.
    race.monkeypatch.setattr(replay_module, "REPLAY_PAGE", 2)
    await _replay_then_batches(race, 1)


async def _replay_then_batches(race: Race, history_limit: int) -> None:
    job = await race.job(tokens=6)
    position = job.ids[2]  # (P, C] is 5 entries: Redis pages of 2 do not end at C
    hub = race.hub(history_limit=history_limit)
    probe = Probe()
    probe.hold.clear()  # the replay's first write waits while the job goes on
    task = race.stream(hub, job, position, probe)
    joined = await hub.joined_at(0)
    cursor = joined.cursor
    assert position < cursor == job.last
    assert (joined.feed.history_entries is None) == (history_limit < len(job.ids))
    await until(lambda: probe.waiting, "the replay is writing")
    # Entries after C, read by the feed during the replay: they reach the viewer as batches.
    await read_by(joined.feed, (await job.tokens(3))[-1])
    assert [batch.prev for batch in joined.viewer.batches][:1] == [cursor]
    probe.hold.set()
    await until(lambda: probe.last_id == job.last, "the viewer caught up")
    await job.tokens(2)
    await job.done()
    outcome = await task
    assert outcome.reason == "terminal"
    race.expect_exact(probe.events, await job.entries(), after=position)
    # The replay ended exactly at C: an event has C's id, and the batches took over from there.
    assert cursor in [event_id(event) for event in probe.events]


async def at_the_cursor(race: Race) -> None:
    """``P == C``: takes batches as they come, written by the feed itself while the viewer is
    idle and the batch starts at its position; exact because contiguous from ``C``."""
    job = await race.job(tokens=3)
    position = job.last
    hub = race.gateway_hub()
    direct = "tokenrelay_event_bytes_sent_direct_total"
    direct_before = race.gateway_metric(direct)
    url = race.gateway.make_url(job.events_path)
    headers = {"Last-Event-ID": format_stream_id(position)}
    async with race.http.get(url, headers=headers) as response:
        connection = Connection(response)
        # Joined, with nothing to replay: from here on the viewer's task waits, idle.
        await until(lambda: hub.viewer_count(job.id) == 1, "the viewer joined")
        for _ in range(5):
            await connection.read_until(await job.token())
        await job.done()
        await connection.read_to_end()
    race.expect_exact(connection.events, await job.entries(), after=position)
    # One event per batch (one token per read), each the entry after the previous one.
    after_position = job.ids[job.ids.index(position) + 1 :]
    assert [event_id(event) for event in connection.events] == after_position
    # All of it was written by the feed, straight to the socket: everything after the
    # stream's first frame (``retry:``, written by the handler).
    live = len(connection.body) - len(b"retry: 200\n\n")
    await until(
        lambda: race.gateway_metric(direct) - direct_before == live, "the direct bytes counted"
    )


async def ahead_of_the_cursor_batch_straddles(race: Race) -> None:
    """``P > C`` (another gateway was ahead): skips batches up to ``P``; a batch that straddles
    ``P`` is re-encoded from its entries after ``P``; exact because its position only moves
    forward."""
    job = await race.job(tokens=1)
    reads = HeldReads(race.redis)
    hub = race.hub(redis=reads)
    # This gateway follows the job already (another viewer), its lane reading from C.
    holder = await hub.subscribe(job.id)
    cursor = holder.cursor
    assert cursor == job.last
    reads.hold()
    first = await job.token()
    # The lane's read came back with the first new entry; the reply is on its way, held.
    await until(lambda: bool(reads.held_entries(job)), "the lane's read returned, held")
    assert reads.held_entries(job) == [(cursor, [first])]
    rest = await job.tokens(4)
    position = rest[1]  # the viewer got this far from a gateway that was ahead
    probe = Probe()
    task = race.stream(hub, job, position, probe)
    joined = await hub.joined_at(1)
    assert joined.cursor == cursor < position
    await until(lambda: joined.viewer.idle, "the viewer waits for batches")
    reads.release()
    await until(lambda: holder.feed.cursor == rest[-1], "the feed read past P")
    terminal = await job.done()
    outcome = await task
    assert outcome.reason == "terminal"
    batches: list[Batch] = list(holder.viewer.batches)
    assert [batch.last for batch in batches] == [first, rest[-1], terminal]
    skipped, straddling, last = batches
    assert skipped.last < position  # a batch wholly at or before P: nothing of it is sent
    assert straddling.prev < position < straddling.last
    after_position = straddling.after(position)
    assert after_position and after_position != straddling.frames
    assert probe.body == after_position + last.frames
    race.expect_exact(probe.events, await job.entries(), after=position)


async def unknown_position(race: Race) -> None:
    """``P`` not in the stream: ``reset`` (``unknown_position``), then everything from the
    start; exact because there is no silent gap."""
    job = await race.job(tokens=4)
    before_start = (1, 0)
    past_the_end = (job.last[0] + 1_000_000, 0)
    url = race.gateway.make_url(job.events_path)
    connections: list[tuple[StreamId, Connection]] = []
    for position in (before_start, past_the_end):
        headers = {"Last-Event-ID": format_stream_id(position)}
        response = await race.http.get(url, headers=headers)
        connection = Connection(response)
        await connection.read_until(job.last)
        connections.append((position, connection))
    await job.tokens(2)
    await job.done()
    entries = await job.entries()
    for position, connection in connections:
        await connection.read_to_end()
        connection.response.release()
        reset, *rest = connection.events
        assert (reset.event, reset.id) == (RESET, format_stream_id(position))
        assert orjson.loads(reset.data) == {"attempt": 0, "reason": "unknown_position"}
        assert event_id(rest[0]) == entries[0].id  # from the very first entry
        race.expect_exact(rest, entries, after=ZERO_ID)


async def ended_at_or_before_position(race: Race) -> None:
    """Job ended at or before ``P``: ``204`` before the stream opens; exact because the
    terminal is the last entry."""
    job = await race.job(tokens=3)
    terminal = await job.done()
    entries = await job.entries()
    assert entries[-1].id == terminal and entries[-1].terminal  # the terminal is the last entry
    hub = race.gateway_hub()
    url = race.gateway.make_url(job.events_path)
    no_content = race.gateway_metric("tokenrelay_stream_no_content_total")
    for position in (terminal, (terminal[0] + 1, 0)):
        headers = {"Last-Event-ID": format_stream_id(position)}
        async with race.http.get(url, headers=headers) as response:
            assert response.status == 204
            assert await response.read() == b""
            assert "text/event-stream" not in response.headers.get("Content-Type", "")
    assert race.gateway_metric("tokenrelay_stream_no_content_total") == no_content + 2
    assert hub.feed_count == 0  # no stream opened: not even a feed
    # Just before the terminal entry, the stream opens and ends with it.
    reading = await race.resume_over_http(job, job.ids[-2])
    race.expect_exact(reading.events, entries, after=job.ids[-2])
    assert len(reading.events) == 1


async def job_ends_during_replay(race: Race) -> None:
    """The job ends while the viewer replays: the replay stops at the terminal entry."""
    race.monkeypatch.setattr(replay_module, "REPLAY_PAGE", 2)  # Redis replays in pages
    for history_limit in (HISTORY, 1):
        await _ends_while_replaying(race, history_limit)
        await _ended_before_the_join(race, history_limit)


async def _ends_while_replaying(race: Race, history_limit: int) -> None:
    job = await race.job(tokens=6)
    hub = race.hub(history_limit=history_limit)
    probe = Probe()
    probe.hold.clear()  # the replay's first write waits: the client reads slowly
    task = race.stream(hub, job, ZERO_ID, probe)
    joined = await hub.joined_at(0)
    await until(lambda: probe.waiting, "the replay is writing")
    assert not joined.ended
    await job.tokens(2)
    terminal = await job.done()
    await until(lambda: joined.feed.ended, "the feed read the terminal entry")
    assert joined.cursor < terminal
    probe.hold.set()
    outcome = await task
    assert outcome.reason == "terminal"
    race.expect_exact(probe.events, await job.entries(), after=ZERO_ID)


async def _ended_before_the_join(race: Race, history_limit: int) -> None:
    # The record said "running" (no terminal_id) and the job ended before the viewer joined:
    # the feed's cursor is the terminal entry, and the replay ends the stream there.
    job = await race.job(tokens=5)
    terminal = await job.done()
    hub = race.hub(history_limit=history_limit)
    probe = Probe()
    outcome = await race.stream(hub, job, job.ids[2], probe, terminal_id=None)
    joined = hub.joined[0]
    assert joined.ended and joined.cursor == terminal
    assert outcome.reason == "terminal"
    race.expect_exact(probe.events, await job.entries(), after=job.ids[2])


async def viewer_too_slow(race: Race) -> None:
    """Viewer too slow (queue full): the stream ends and the client resumes from Redis;
    exact because memory stays bounded."""
    limit = 3
    job = await race.job(tokens=2)
    start = job.last
    hub = race.hub(viewer_limit=limit)
    probe = Probe()
    task = race.stream(hub, job, start, probe)
    joined = await hub.joined_at(0)
    viewer = joined.viewer
    await until(lambda: viewer.idle, "the viewer waits for batches")
    probe.hold.clear()  # the client stops reading
    first = await job.token()
    await until(lambda: probe.waiting, "the viewer's write is stuck")
    queued: list[int] = []
    for _ in range(limit + 3):
        entry = await job.token()
        await read_by(joined.feed, entry)
        queued.append(len(viewer.batches))
    # Its queue grew to the limit, then the viewer was cut off and the queue dropped.
    assert queued == [1, 2, 3, 0, 0, 0]
    assert viewer.overflowed
    probe.hold.set()
    outcome = await task
    assert outcome.reason == "slow_viewer"
    assert probe.last_id == first
    await job.done()
    resumed = await race.resume_over_http(job, probe.last_id)
    race.expect_exact(probe.events + resumed.events, await job.entries(), after=start)


async def client_gone(race: Race) -> None:
    """Client gone: aiohttp cancels the handler and the viewer leaves the feed; the feed stops
    with its last viewer."""
    job = await race.job(tokens=3)
    hub = race.gateway_hub()
    gone = ("tokenrelay_viewer_streams_ended_total", {"reason": "client_gone"})
    gone_before = race.gateway_metric(*gone)
    response = await race.http.get(race.gateway.make_url(job.events_path))
    connection = Connection(response)
    await connection.read_until(job.last)
    await until(lambda: hub.viewer_count(job.id) == 1 and hub.lane_readers == 1, "following")
    response.close()  # the client drops the connection
    await until(
        lambda: hub.viewer_count(job.id) == 0 and hub.feed_count == 0 and hub.lane_readers == 0,
        "the viewer left and its feed stopped",
    )
    await until(lambda: race.gateway_metric(*gone) == gone_before + 1, "ended as client_gone")
    await job.tokens(2)
    await job.done()
    resumed = await race.resume_over_http(job, event_id(connection.events[-1]))
    race.expect_exact(connection.events + resumed.events, await job.entries(), after=ZERO_ID)


async def gateway_sigterm(race: Race) -> None:
    """Gateway SIGTERM: streams end, new ones get 503; clients reconnect elsewhere."""
    job = await race.job(tokens=3)
    app = await create_app(race.settings, race.redis)
    leaving_hub = app[STATE].hub
    async with TestClient(TestServer(app, handler_cancellation=True)) as leaving:
        url = leaving.make_url(job.events_path)
        async with race.http.get(url) as response:
            connection = Connection(response)
            await connection.read_until(job.last)
            await until(lambda: leaving_hub.viewer_count(job.id) == 1, "the viewer joined")
            # What SIGTERM runs (serve_gateway: runner.cleanup()): the app's shutdown hook.
            await app.shutdown()
            await connection.read_to_end()  # a clean end of the body, not a broken connection
        assert connection.events[-1].event not in TERMINAL
        shutdown = {"reason": "shutdown"}
        registry = app[STATE].metrics.registry
        ended = registry.get_sample_value("tokenrelay_viewer_streams_ended_total", shutdown)
        assert ended == 1
        async with race.http.get(url) as refused:
            assert refused.status == 503
            assert (await refused.json())["error"]["code"] == "shutting_down"
    await job.tokens(2)
    await job.done()
    # Elsewhere: the other gateway, from the last event id.
    resumed = await race.resume_over_http(job, event_id(connection.events[-1]))
    race.expect_exact(connection.events + resumed.events, await job.entries(), after=ZERO_ID)


async def quiet_connection_pings(race: Race) -> None:
    """No data for ``PING_SECONDS``: ``: ping``, asked by the sweeper; data resets the timer."""
    ping_seconds = 0.2
    job = await race.job(tokens=1)
    start = job.last
    hub = race.hub(ping_seconds=ping_seconds)
    probe = Probe()
    opened = time.monotonic()
    task = race.stream(hub, job, start, probe)
    await until(lambda: probe.pings == 1, "a ping on a quiet stream")
    token = await job.token()
    await until(lambda: probe.last_id == token, "the token arrived")
    await until(lambda: probe.pings == 2, "a ping once quiet again")
    await job.done()
    outcome = await task
    assert outcome.reason == "terminal"
    assert probe.writes[0] == PING and probe.writes[2] == PING
    assert PING not in probe.writes[1] and probe.writes[3:].count(PING) == 0
    # Each ping came a full PING_SECONDS after the write before it: the token's write reset
    # the timer for the second.
    assert len(probe.calls) == len(probe.writes)
    for previous, at, data in zip([opened, *probe.calls], probe.calls, probe.writes, strict=False):
        if data == PING:
            assert at - previous >= ping_seconds
    race.expect_exact(probe.events, await job.entries(), after=start)


async def stuck_write_aborted(race: Race) -> None:
    """A write stuck past ``SEND_TIMEOUT_SECONDS``: the sweeper aborts the connection; the
    client resumes from Redis."""
    send_timeout = 0.3
    job = await race.job(tokens=2)
    start = job.last
    hub = race.hub(ping_seconds=10.0, send_timeout=send_timeout)
    probe = Probe()
    task = race.stream(hub, job, start, probe)
    joined = await hub.joined_at(0)
    viewer = joined.viewer
    await until(lambda: viewer.idle, "the viewer waits for batches")
    probe.hold.clear()  # the client stops reading: the next write never completes
    await job.token()
    await until(lambda: probe.waiting, "the write is stuck")
    stuck_since = viewer.write_started
    assert stuck_since is not None
    with pytest.raises(ConnectionResetError):
        await task
    assert probe.aborted_by == "viewer-sweeper"
    assert probe.aborted_at is not None and probe.aborted_at - stuck_since > send_timeout
    assert probe.events == []  # the stuck write never reached the client
    assert hub.viewer_count(job.id) == 0
    await job.token()
    await job.done()
    resumed = await race.resume_over_http(job, start)
    race.expect_exact(resumed.events, await job.entries(), after=start)


async def feed_recreated_during_blocked_read(race: Race) -> None:
    """The feed is dropped and re-created while its lane's read is blocked: the late read's
    entries at or before the new feed's cursor are dropped; batches stay contiguous."""
    job = await race.job(tokens=2)
    reads = HeldReads(race.redis)
    hub = race.hub(redis=reads)
    key = job_events_key(job.id)
    first_viewer = await hub.subscribe(job.id)
    old_feed = first_viewer.feed
    await until(lambda: any(key in asked for asked in reads.issued), "the lane reads the job")
    reads.hold()
    late = await job.token()
    await until(lambda: bool(reads.held_entries(job)), "the lane's read returned, held")
    # Its last viewer leaves: the feed is dropped, while its lane's read is still out.
    hub.unsubscribe(first_viewer)
    assert hub.feed_count == 0
    await job.tokens(2)
    # A new viewer: a new feed, loaded from Redis, joins the same lane reader.
    second_viewer = await hub.subscribe(job.id)
    new_feed = second_viewer.feed
    assert new_feed is not old_feed
    new_cursor = second_viewer.cursor
    assert new_cursor == job.last
    ((read_from, read_ids),) = reads.held_entries(job)
    assert read_from == old_feed.cursor < late == read_ids[-1] <= new_cursor
    probe = Probe()
    task = race.stream(hub, job, late, probe)
    await hub.joined_at(2)
    reads.release()  # the late read reaches the new feed
    await job.tokens(2)
    terminal = await job.done()
    outcome = await task
    assert outcome.reason == "terminal"
    batches: list[Batch] = list(second_viewer.viewer.batches)
    assert batches and batches[0].prev == new_cursor
    for batch in batches:
        assert batch.prev < batch.entries[0].id and batch.entries[-1].id == batch.last
        assert [entry.id for entry in batch.entries] == sorted({e.id for e in batch.entries})
    for before, after in itertools.pairwise(batches):
        assert before.last == after.prev
    assert batches[-1].last == terminal
    race.expect_exact(probe.events, await job.entries(), after=late)


ROWS: dict[str, Callable[[Race], Awaitable[None]]] = {
    "behind_the_cursor": behind_the_cursor,
    "at_the_cursor": at_the_cursor,
    "ahead_of_the_cursor_batch_straddles": ahead_of_the_cursor_batch_straddles,
    "unknown_position": unknown_position,
    "ended_at_or_before_position": ended_at_or_before_position,
    "job_ends_during_replay": job_ends_during_replay,
    "viewer_too_slow": viewer_too_slow,
    "client_gone": client_gone,
    "gateway_sigterm": gateway_sigterm,
    "quiet_connection_pings": quiet_connection_pings,
    "stuck_write_aborted": stuck_write_aborted,
    "feed_recreated_during_blocked_read": feed_recreated_during_blocked_read,
}


@pytest.mark.parametrize("row", list(ROWS))
async def test_race_table_row(
    row: str,
    redis: AnyRedis,
    settings: Settings,
    gateway: TestClient[Any, Any],
    http: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    race = Race(redis, settings, gateway, http, monkeypatch)
    try:
        async with asyncio.timeout(ROW_SECONDS):
            await ROWS[row](race)
    finally:
        await race.close()
    assert race.exact_checks > 0, "the row checked no stream"


def race_table_situations() -> list[str]:
    """The "situation" cell of every row of ARCHITECTURE.md's race table, in order."""
    lines = ARCHITECTURE.read_text("utf-8").splitlines()
    start = lines.index(RACE_HEADING)
    section = list(itertools.takewhile(lambda line: not line.startswith("## "), lines[start + 1 :]))
    rows = [line.strip() for line in section if line.strip().startswith("|")]
    header, separator, *body = rows
    assert header.startswith("| situation |"), header
    assert set(separator) <= set("|-: "), separator
    situations = []
    for line in body:
        cells = [cell.strip() for cell in line[1:-1].split("|")]
        assert len(cells) == 3, line
        situations.append(cells[0])
    return situations


def test_every_row_of_the_race_table_is_walked_once() -> None:
    situations = race_table_situations()
    assert len(situations) == len(set(situations)), "a situation appears twice in the table"
    assert set(situations) == set(TABLE), "the race table and TABLE differ: update TABLE"
    ids = [TABLE[situation] for situation in situations]
    assert len(set(ids)) == len(ids)
    assert ids == list(ROWS), "the parametrised rows are not the table's rows, once, in order"
