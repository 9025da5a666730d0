"""Fan-out inside one gateway process: one Redis reader per job, shared by all its viewers.

A :class:`JobFeed` holds a job's cursor (and, while it fits, its history) and hands each new
read to every subscribed :class:`Viewer` as a :class:`Batch`: the entries plus their frames,
encoded once. Batches are contiguous (each starts where the previous ended), which is what
lets a viewer join at any moment without a gap or a repeat (see ``service/viewer_stream.py``).

The reading itself is done per *lane* (``service/keys.py``): a :class:`LaneReader` tails all
live jobs of one lane with one blocking multi-key ``XREAD`` (legal on Redis Cluster because a
lane's keys share one hash slot). So a gateway holds at most one blocked connection per lane,
not per job, and Redis work per token does not grow with viewers. A lane reader is woken to
pick up a new job by an entry on its own control stream, which sits in the lane's slot too.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from service.direct_write import DirectSink, http_chunk
from service.events import ZERO_ID, StreamId, format_stream_id
from service.frames import Entry, encode, entries_from_reply
from service.keys import job_events_key, lane_of, lane_wake_key
from service.redis_client import AnyRedis, is_redis_failure

log = logging.getLogger(__name__)

READ_BLOCK_MS = 5000
# A finished job's feed outlives its last viewer for a while, so the next viewers (a share
# link opened later, a crowd of late joiners, a reconnect) replay from memory instead of
# each reloading the job from Redis. Bounded in time and in entries held.
RETAIN_ENDED_SECONDS = 60.0
RETAIN_ENDED_ENTRIES = 100_000
READ_COUNT = 1000
# A lane whose hand-out took longer than this waits as long again before its next read, up to
# MAX_PAUSE: under heavy fan-out (thousands of viewers on one job) each viewer then gets
# fewer, larger writes, and the event loop keeps half its time for everything else
# (reconnects, other lanes). Light fan-out never pauses, so its latency is untouched.
PAUSE_AFTER_SECONDS = 0.002
MAX_PAUSE_SECONDS = 0.05
WAKE_TTL_SECONDS = 60


@dataclass(frozen=True, slots=True)
class Batch:
    """Entries ``(prev, last]`` of a job's stream, with their frames."""

    prev: StreamId
    last: StreamId
    entries: list[Entry]
    frames: bytes
    terminal: bool
    chunk: bytes = b""  # ``frames`` as one HTTP chunk, for direct writes (live batches only)

    def after(self, position: StreamId) -> bytes:
        """The frames of the entries after ``position``: the shared bytes in the common case."""
        if position <= self.prev:
            return self.frames
        if position >= self.last:
            return b""
        return encode([entry for entry in self.entries if entry.id > position])


HISTORY_CHUNK = 256  # entries per batch when a feed loads a job's past from Redis
# A replay of a live job sends the history's older batches as merged events (one per run of
# tokens) and only the last few batches as they were framed live. The split moves once per
# REPLAY_TAIL batches, so the viewers of a storm share one merged encoding.
REPLAY_TAIL = 64
MERGED_CACHE = 4  # merged encodings kept per feed, by batch range


def batches_of(entries: list[Entry], prev: StreamId) -> list[Batch]:
    """Cut consecutive entries after ``prev`` into encoded batches."""
    batches = []
    for start in range(0, len(entries), HISTORY_CHUNK):
        chunk = entries[start : start + HISTORY_CHUNK]
        batches.append(Batch(prev, chunk[-1].id, chunk, encode(chunk), chunk[-1].terminal))
        prev = chunk[-1].id
    return batches


@dataclass(eq=False, slots=True)
class Viewer:
    """One connected viewer: its position, and its bounded queue of batches.

    While the viewer's task is idle (everything up to ``position`` sent, nothing queued) and
    its socket keeps up, the feed writes a new batch for it directly (``sink``) instead of
    queueing it and waking the task: see ``service/direct_write.py``.
    """

    feed: JobFeed
    limit: int
    batches: deque[Batch] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    overflowed: bool = False
    closed_reason: str | None = None
    # The last entry the client has been sent; moved by whoever writes (task or feed).
    position: StreamId = ZERO_ID
    idle: bool = False  # its task waits for a wake with nothing left to write
    finished: bool = False  # the terminal batch went out through a direct write
    sink: DirectSink | None = None
    on_direct_write: Callable[[bytes], None] | None = None
    direct_bytes: int = 0
    # Kept by the viewer's writer and read by the hub's sweeper.
    last_write: float = field(default_factory=time.monotonic)
    write_started: float | None = None
    needs_ping: bool = False
    abort: Callable[[], None] | None = None

    def offer(self, batch: Batch, now: float) -> None:
        """Write a batch now if the viewer is caught up, else queue it; a viewer that falls
        ``limit`` batches behind is cut off."""
        if (
            self.idle
            and batch.prev == self.position
            and not self.batches
            and not self.overflowed
            and self.closed_reason is None
            and self.sink is not None
            and self.sink.write(batch.chunk)
        ):
            self.position = batch.last
            self.last_write = now
            self.direct_bytes += len(batch.frames)
            if self.on_direct_write is not None:
                self.on_direct_write(batch.frames)
            if batch.terminal:
                self.finished = True
                self.wake.set()
            return
        if self.overflowed:
            return
        if len(self.batches) >= self.limit:
            self.overflowed = True
            self.batches.clear()
        else:
            self.batches.append(batch)
        self.wake.set()

    def close(self, reason: str) -> None:
        """End this viewer's stream (shutdown, feed ended without a terminal event)."""
        self.closed_reason = reason
        self.wake.set()

    def sweep(self, now: float, ping_seconds: float, send_timeout: float) -> None:
        """Ask for a ping after a quiet spell; drop a connection whose write is stuck (a
        stalled client, or a cut-off one still blocked in its last write)."""
        if self.write_started is not None:
            stuck = now - self.write_started
            if (stuck > send_timeout or self.overflowed) and self.abort is not None:
                self.abort()
            return
        if now - self.last_write >= ping_seconds and not self.needs_ping:
            self.needs_ping = True
            self.wake.set()


class JobFeed:
    """One job's position, history and viewers in this process."""

    def __init__(self, redis: AnyRedis, job_id: str, history_limit: int) -> None:
        self._redis = redis
        self.job_id = job_id
        self.key = job_events_key(job_id)
        self.cursor: StreamId = ZERO_ID
        self.viewers: set[Viewer] = set()
        self.ended = False
        self._ready = asyncio.Event()
        # The stream from its start, as encoded batches, while it fits: resumes and late
        # joiners replay from here (joining ready-made frames) instead of each asking Redis
        # and re-encoding. Dropped for good after any Redis error.
        self._history: list[Batch] | None = None
        self._history_lasts: list[StreamId] = []
        self._history_entries = 0
        self._history_limit = history_limit
        self._merged: dict[tuple[int, int], bytes] = {}

    async def ready(self) -> None:
        """Wait until the cursor is set from Redis."""
        await self._ready.wait()

    @property
    def history_entries(self) -> int | None:
        """Entries held in memory; None when replays must ask Redis."""
        return None if self._history is None else self._history_entries

    def replay(self, after: StreamId, until: StreamId) -> tuple[bytes, bool] | None:
        """Frames of the entries ``(after, until]`` and whether the last is terminal, from
        memory; None when memory does not hold them. ``until`` must be a batch boundary (the
        cursor a viewer got when it joined)."""
        if self._history is None:
            return None
        first = bisect.bisect_right(self._history_lasts, after)
        end = bisect.bisect_right(self._history_lasts, until)
        if first >= end:
            return b"", False
        history = self._history
        # A finished job's past is fixed: all of it is merged, the same bytes from any
        # gateway however its batches were read.
        split = end if history[end - 1].terminal else end - end % REPLAY_TAIL
        # A batch that ``after`` cuts as it was framed, then the batches up to the split
        # merged (one encoding shared by every viewer resuming there or earlier; from the
        # start of a finished job, the same bytes on every gateway), then the rest as framed.
        frames: list[bytes] = []
        start = first
        if history[first].prev != after:
            frames.append(history[first].after(after))
            start += 1
        if split > start:
            frames.append(self._merged_range(start, split))
            start = split
        frames += [batch.frames for batch in history[start:end]]
        return b"".join(frames), history[end - 1].terminal

    def _merged_range(self, start: int, stop: int) -> bytes:
        """History batches ``start..stop-1`` encoded with every run of tokens merged into one
        event: far fewer bytes than the live frames."""
        key = (start, stop)
        merged = self._merged.get(key)
        if merged is None:
            assert self._history is not None
            entries = [entry for batch in self._history[start:stop] for entry in batch.entries]
            merged = encode(entries)
            if len(self._merged) >= MERGED_CACHE:
                del self._merged[next(iter(self._merged))]
            self._merged[key] = merged
        return merged

    def replay_entries(self, after: StreamId, until: StreamId) -> list[Entry] | None:
        """The entries ``(after, until]`` from memory, for readers that re-encode them (the
        OpenAI-compatible streams); None when memory does not hold them."""
        if self._history is None:
            return None
        first = bisect.bisect_right(self._history_lasts, after)
        end = bisect.bisect_right(self._history_lasts, until)
        return [
            entry
            for batch in self._history[first:end]
            for entry in batch.entries
            if after < entry.id <= until
        ]

    async def load(self) -> None:
        """Set the cursor to the stream's last entry (loading the history if it fits)."""
        while True:
            try:
                last = await self._load()
                break
            except Exception as exc:
                # Viewers wait for this load: it retries whatever failed, like a lane reader.
                if is_redis_failure(exc):
                    log.warning("feed cannot reach redis", extra={"job_id": self.job_id,
                                "error": repr(exc)})  # fmt: skip
                else:
                    log.exception("feed load crashed; retrying", extra={"job_id": self.job_id})
                await asyncio.sleep(0.5)
        if last is not None:
            self.cursor = last.id
            self.ended = last.terminal
        self._ready.set()

    async def _load(self) -> Entry | None:
        entries = entries_from_reply(
            await self._redis.xrange(self.key, count=self._history_limit + 1)
        )
        if len(entries) <= self._history_limit:
            self._history = batches_of(entries, ZERO_ID)
            self._history_lasts = [batch.last for batch in self._history]
            self._history_entries = len(entries)
            return entries[-1] if entries else None
        tail = entries_from_reply(await self._redis.xrevrange(self.key, count=1))
        return tail[0] if tail else None

    def deliver(self, entries: list[Entry]) -> None:
        """Hand entries read after the cursor to every viewer, as one batch."""
        if entries[0].id <= self.cursor:
            # A read issued for an earlier feed of the same job (dropped and re-created
            # while the lane's XREAD was blocked) starts before this feed's cursor.
            entries = [entry for entry in entries if entry.id > self.cursor]
            if not entries:
                return
        frames = encode(entries)
        batch = Batch(
            prev=self.cursor,
            last=entries[-1].id,
            entries=entries,
            frames=frames,
            terminal=entries[-1].terminal,
            chunk=http_chunk(frames),
        )
        self._remember(batch)
        self.cursor = batch.last
        self.ended = batch.terminal
        now = time.monotonic()
        for viewer in self.viewers:
            viewer.offer(batch, now)

    def redis_failed(self) -> None:
        """Redis may come back with less than it had: from now on replays ask Redis."""
        self._history = None
        self._history_lasts = []
        self._merged.clear()

    def close_viewers(self, reason: str) -> None:
        """End every viewer's stream; they reconnect and resume from Redis."""
        for viewer in self.viewers:
            viewer.close(reason)

    def _remember(self, batch: Batch) -> None:
        if self._history is None:
            return
        self._history_entries += len(batch.entries)
        if self._history_entries > self._history_limit:
            self.redis_failed()  # too long to keep: replays ask Redis
            return
        # Kept without its HTTP chunk (only live hand-out writes chunks): half the memory.
        self._history.append(replace(batch, chunk=b""))
        self._history_lasts.append(batch.last)


class LaneReader:
    """Tails every live job of one lane for this process with one blocking ``XREAD``."""

    def __init__(self, redis: AnyRedis, lane: int, reader_id: str) -> None:
        self._redis = redis
        self.lane = lane
        self._wake_key = lane_wake_key(lane, reader_id)
        self._feeds: dict[str, JobFeed] = {}  # by events key
        self._wake_cursor = "0-0"
        self._task: asyncio.Task[None] | None = None
        self._woken = False
        # Checked by the loop too: on Python 3.11 a cancellation can be lost inside
        # redis-py's socket timeout (asyncio.wait_for, gh-86296).
        self._stopped = False

    @property
    def empty(self) -> bool:
        """Whether the lane has no live job to read."""
        return not self._feeds

    def add(self, feed: JobFeed) -> None:
        """Start reading ``feed``'s job from its cursor."""
        self._feeds[feed.key] = feed
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"lane-{self.lane}")
        else:
            self._wake()

    def remove(self, feed: JobFeed) -> None:
        """Stop reading ``feed``'s job (it ended, or has no viewers left)."""
        if self._feeds.get(feed.key) is feed:
            del self._feeds[feed.key]

    async def stop(self) -> None:
        """Stop the reader."""
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _wake(self) -> None:
        # The blocked XREAD returns when its own control stream gets an entry.
        if not self._woken:
            self._woken = True
            asyncio.get_running_loop().create_task(self._send_wake())

    async def _send_wake(self) -> None:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.xadd(self._wake_key, {"w": "1"}, maxlen=1)
                pipe.expire(self._wake_key, WAKE_TTL_SECONDS)
                await pipe.execute()
        except Exception as exc:
            if not is_redis_failure(exc):
                raise
            log.warning("lane wake failed", extra={"lane": self.lane, "error": repr(exc)})

    async def _run(self) -> None:
        while self._feeds and not self._stopped:
            streams: dict[Any, Any] = {
                key: format_stream_id(feed.cursor) for key, feed in self._feeds.items()
            }
            streams[self._wake_key] = self._wake_cursor
            self._woken = False
            try:
                reply: Any = await self._redis.xread(streams, count=READ_COUNT, block=READ_BLOCK_MS)
            except Exception as exc:
                # The reader must outlive any failure: if it died, every viewer of the
                # lane would wait forever.
                for feed in self._feeds.values():
                    feed.redis_failed()
                if is_redis_failure(exc):
                    log.warning("lane read failed; retrying", extra={"lane": self.lane,
                                "error": repr(exc)})  # fmt: skip
                else:
                    log.exception("lane read crashed; retrying", extra={"lane": self.lane})
                await asyncio.sleep(0.5)
                continue
            started = time.monotonic()
            try:
                self._dispatch(reply or ())
            except Exception:
                # Not one viewer's failure may stop the lane for the others.
                log.exception("lane hand-out crashed", extra={"lane": self.lane})
            took = time.monotonic() - started
            if took > PAUSE_AFTER_SECONDS:
                await asyncio.sleep(min(took, MAX_PAUSE_SECONDS))

    def _dispatch(self, reply: Any) -> None:
        for raw_key, raw_entries in reply:
            key = raw_key.decode()
            if key == self._wake_key:
                self._wake_cursor = raw_entries[-1][0].decode()
                continue
            feed = self._feeds.get(key)
            entries = entries_from_reply(raw_entries)
            if feed is None or not entries:
                continue
            feed.deliver(entries)
            if feed.ended:
                self.remove(feed)


class FeedHub:
    """The process's feeds by job id and its lane readers: a job's feed is created for its
    first viewer and dropped after its last viewer leaves."""

    def __init__(
        self,
        redis: AnyRedis,
        viewer_limit: int,
        history_limit: int = 20_000,
        *,
        ping_seconds: float = 15.0,
        send_timeout: float = 30.0,
    ) -> None:
        self._redis = redis
        self._viewer_limit = viewer_limit
        self._history_limit = history_limit
        self._ping_seconds = ping_seconds
        self._send_timeout = send_timeout
        self._sweeper: asyncio.Task[None] | None = None
        self._feeds: dict[str, JobFeed] = {}
        self._lanes: dict[int, LaneReader] = {}
        self._reader_id = uuid.uuid4().hex[:12]
        self._loading: set[asyncio.Task[None]] = set()
        # Ended feeds kept without viewers (job id -> when), oldest first.
        self._retained: dict[str, float] = {}
        self._retained_entries = 0

    async def subscribe(
        self, job_id: str, terminal_id: StreamId | None = None
    ) -> tuple[Viewer, StreamId, bool]:
        """Register a viewer. Every batch after the returned cursor will reach it; the flag
        says the entry at the cursor is the job's terminal one (nothing will follow).

        ``terminal_id``, the terminal entry the job record names, lets a finished job's
        retained feed serve the viewer; a feed that does not end there (the job was run
        again) is dropped."""
        feed = self._feeds.get(job_id)
        if job_id in self._retained:
            self._unretain(job_id)
        if feed is not None and feed.ended and not feed.viewers and feed.cursor != terminal_id:
            # An ended feed the job record does not confirm (the job was run again, or the
            # caller cannot tell): load the job afresh.
            del self._feeds[job_id]
            feed = None
        if feed is None:
            feed = JobFeed(self._redis, job_id, self._history_limit)
            self._feeds[job_id] = feed
            task = asyncio.create_task(self._start(feed), name=f"feed-{job_id}")
            self._loading.add(task)
            task.add_done_callback(self._loading.discard)
        try:
            await feed.ready()
        except asyncio.CancelledError:
            # The viewer left while the feed was loading: nobody may be left to drop it.
            if not feed.viewers and self._feeds.get(job_id) is feed:
                del self._feeds[job_id]
            raise
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.create_task(self._sweep(), name="viewer-sweeper")
        viewer = Viewer(feed=feed, limit=self._viewer_limit)
        # No await between reading the cursor and joining: the viewer misses no batch.
        feed.viewers.add(viewer)
        return viewer, feed.cursor, feed.ended

    async def _sweep(self) -> None:
        interval = min(self._ping_seconds / 2, 1.0)
        while self._feeds:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for job_id, since in list(self._retained.items()):
                if now - since < RETAIN_ENDED_SECONDS:
                    break
                self._unretain(job_id)
                del self._feeds[job_id]
            for feed in list(self._feeds.values()):
                for viewer in list(feed.viewers):
                    viewer.sweep(now, self._ping_seconds, self._send_timeout)

    async def _start(self, feed: JobFeed) -> None:
        await feed.load()
        if feed.ended or self._feeds.get(feed.job_id) is not feed:
            return
        lane = lane_of(feed.job_id)
        reader = self._lanes.get(lane)
        if reader is None:
            reader = self._lanes[lane] = LaneReader(self._redis, lane, self._reader_id)
        reader.add(feed)

    def unsubscribe(self, viewer: Viewer) -> None:
        """Remove a viewer; its feed is dropped when nobody is left."""
        feed = viewer.feed
        feed.viewers.discard(viewer)
        if feed.viewers:
            return
        if self._feeds.get(feed.job_id) is feed:
            if feed.ended and feed.history_entries is not None:
                self._retain(feed)
                return
            del self._feeds[feed.job_id]
        reader = self._lanes.get(lane_of(feed.job_id))
        if reader is not None:
            reader.remove(feed)

    def _retain(self, feed: JobFeed) -> None:
        self._retained[feed.job_id] = time.monotonic()
        self._retained_entries += feed.history_entries or 0
        while self._retained_entries > RETAIN_ENDED_ENTRIES:
            oldest = next(iter(self._retained))
            self._unretain(oldest)
            del self._feeds[oldest]

    def _unretain(self, job_id: str) -> None:
        del self._retained[job_id]
        self._retained_entries -= self._feeds[job_id].history_entries or 0

    def viewer_count(self, job_id: str) -> int:
        """Viewers of ``job_id`` connected to this process."""
        feed = self._feeds.get(job_id)
        return len(feed.viewers) if feed is not None else 0

    @property
    def total_viewers(self) -> int:
        """Viewers connected to this process."""
        return sum(len(feed.viewers) for feed in self._feeds.values())

    @property
    def feed_count(self) -> int:
        """Jobs this process is following (finished ones kept for late viewers included)."""
        return len(self._feeds)

    @property
    def lane_readers(self) -> int:
        """Lanes this process is reading (one blocked Redis connection each)."""
        return sum(not reader.empty for reader in self._lanes.values())

    def close_all(self, reason: str) -> None:
        """End every viewer's stream (graceful shutdown: they reconnect elsewhere)."""
        for feed in self._feeds.values():
            feed.close_viewers(reason)

    async def stop(self) -> None:
        """Stop every lane reader."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        for task in self._loading:
            task.cancel()
        readers = list(self._lanes.values())
        self._lanes.clear()
        self._feeds.clear()
        self._retained.clear()
        self._retained_entries = 0
        await asyncio.gather(
            *(reader.stop() for reader in readers), *self._loading, return_exceptions=True
        )
