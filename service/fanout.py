"""Fan-out inside one gateway process: one Redis reader per job, shared by all its viewers.

A :class:`JobFeed` tails a job's event stream from its cursor and hands each read to every
subscribed :class:`Viewer` as a :class:`Batch`: the entries plus their frames, encoded once.
Batches are contiguous (each starts where the previous ended), which is what lets a viewer
join at any moment without a gap or a repeat (see ``service/viewer_stream.py``).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from service.events import ZERO_ID, StreamId, format_stream_id
from service.frames import Entry, encode, entries_from_reply
from service.keys import job_events_key

log = logging.getLogger(__name__)

READ_BLOCK_MS = 5000
READ_COUNT = 1000


@dataclass(frozen=True, slots=True)
class Batch:
    """Entries ``(prev, last]`` of a job's stream, with their frames."""

    prev: StreamId
    last: StreamId
    entries: list[Entry]
    frames: bytes
    terminal: bool


@dataclass(eq=False, slots=True)
class Viewer:
    """One connected viewer's bounded queue of batches."""

    feed: JobFeed
    limit: int
    batches: deque[Batch] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    overflowed: bool = False
    closed_reason: str | None = None

    def offer(self, batch: Batch) -> None:
        """Queue a batch; a viewer that falls ``limit`` batches behind is cut off."""
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


class JobFeed:
    """Tails one job's event stream for every viewer of that job in this process."""

    def __init__(self, redis: Redis, job_id: str, history_limit: int) -> None:
        self._redis = redis
        self.job_id = job_id
        self._key = job_events_key(job_id)
        self.cursor: StreamId = ZERO_ID
        # Every entry from the stream's start while it fits: resumes and late joiners replay
        # from here instead of each asking Redis. Dropped for good after any Redis error.
        self._history: list[Entry] | None = None
        self._history_ids: list[StreamId] = []
        self._history_limit = history_limit
        self.viewers: set[Viewer] = set()
        self.ended = False
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin tailing (the first viewer waits for :meth:`ready`)."""
        self._task = asyncio.create_task(self._run(), name=f"feed-{self.job_id}")

    async def ready(self) -> None:
        """Wait until the cursor is set from Redis."""
        await self._ready.wait()

    async def stop(self) -> None:
        """Stop reading (the feed has no viewers left, or the process shuts down)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        try:
            await self._init_cursor()
            while not self.ended:
                await self._read_once()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("job feed failed", extra={"job_id": self.job_id})
        finally:
            self.ended = True
            self._ready.set()
            for viewer in self.viewers:
                viewer.close("feed_ended")

    def replay(self, after: StreamId, until: StreamId) -> list[Entry] | None:
        """Entries ``(after, until]`` from memory, or None when memory does not hold them."""
        if self._history is None:
            return None
        low = bisect.bisect_right(self._history_ids, after)
        high = bisect.bisect_right(self._history_ids, until)
        return self._history[low:high]

    async def _init_cursor(self) -> None:
        while True:
            try:
                last = await self._load()
                break
            except RedisError as exc:
                log.warning("feed cannot reach redis", extra={"job_id": self.job_id,
                            "error": str(exc)})  # fmt: skip
                await asyncio.sleep(0.5)
        if last is not None:
            self.cursor = last.id
            self.ended = last.terminal
        self._ready.set()

    async def _load(self) -> Entry | None:
        """Load the history if it fits; return the stream's last entry."""
        entries = entries_from_reply(
            await self._redis.xrange(self._key, count=self._history_limit + 1)
        )
        if len(entries) <= self._history_limit:
            self._history = entries
            self._history_ids = [entry.id for entry in entries]
            return entries[-1] if entries else None
        tail = entries_from_reply(await self._redis.xrevrange(self._key, count=1))
        return tail[0] if tail else None

    def _remember(self, entries: list[Entry]) -> None:
        if self._history is None:
            return
        if len(self._history) + len(entries) > self._history_limit:
            self._forget()
            return
        self._history.extend(entries)
        self._history_ids.extend(entry.id for entry in entries)

    def _forget(self) -> None:
        self._history = None
        self._history_ids = []

    async def _read_once(self) -> None:
        try:
            reply: Any = await self._redis.xread(
                {self._key: format_stream_id(self.cursor)}, count=READ_COUNT, block=READ_BLOCK_MS
            )
        except RedisError as exc:
            # Redis may come back with less than it had: from now on replays ask Redis.
            self._forget()
            log.warning("feed read failed; retrying", extra={"job_id": self.job_id,
                        "error": str(exc)})  # fmt: skip
            await asyncio.sleep(0.5)
            return
        if not reply:
            return
        entries = entries_from_reply(reply[0][1])
        if not entries:
            return
        batch = Batch(
            prev=self.cursor,
            last=entries[-1].id,
            entries=entries,
            frames=encode(entries),
            terminal=entries[-1].terminal,
        )
        self._remember(entries)
        self.cursor = batch.last
        self.ended = batch.terminal
        for viewer in self.viewers:
            viewer.offer(batch)


class FeedHub:
    """The process's feeds by job id; creates a feed for a job's first viewer and stops it
    after its last viewer leaves."""

    def __init__(self, redis: Redis, viewer_limit: int, history_limit: int = 20_000) -> None:
        self._redis = redis
        self._viewer_limit = viewer_limit
        self._history_limit = history_limit
        self._feeds: dict[str, JobFeed] = {}
        self._stopping: set[asyncio.Task[None]] = set()

    async def subscribe(self, job_id: str) -> tuple[Viewer, StreamId, bool]:
        """Register a viewer. Every batch after the returned cursor will reach it; the flag
        says the entry at the cursor is the job's terminal one (nothing will follow)."""
        feed = self._feeds.get(job_id)
        if feed is None or feed.ended:
            feed = JobFeed(self._redis, job_id, self._history_limit)
            self._feeds[job_id] = feed
            feed.start()
        await feed.ready()
        viewer = Viewer(feed=feed, limit=self._viewer_limit)
        # No await between reading the cursor and joining: the viewer misses no batch.
        feed.viewers.add(viewer)
        return viewer, feed.cursor, feed.ended

    def unsubscribe(self, viewer: Viewer) -> None:
        """Remove a viewer; its feed stops when nobody is left."""
        feed = viewer.feed
        feed.viewers.discard(viewer)
        if feed.viewers:
            return
        if self._feeds.get(feed.job_id) is feed:
            del self._feeds[feed.job_id]
        task = asyncio.get_running_loop().create_task(feed.stop())
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

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
        """Jobs this process is reading (one Redis reader each)."""
        return len(self._feeds)

    def close_all(self, reason: str) -> None:
        """End every viewer's stream (graceful shutdown: they reconnect elsewhere)."""
        for feed in self._feeds.values():
            for viewer in feed.viewers:
                viewer.close(reason)

    async def stop(self) -> None:
        """Stop every feed, including those already stopping."""
        feeds = list(self._feeds.values())
        self._feeds.clear()
        await asyncio.gather(
            *(feed.stop() for feed in feeds), *self._stopping, return_exceptions=True
        )
