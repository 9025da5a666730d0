"""The process's feeds by job id and its lane readers: a job's feed is created for its first
viewer, shared by all of them, and dropped (or kept a while, if the job ended) after the last."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass

from service.contract.events import StreamId
from service.contract.keys import lane_of
from service.contract.store.redis_client import AnyRedis
from service.gateway.fanout.batch import DirectWrites
from service.gateway.fanout.feed import JobFeed
from service.gateway.fanout.lane import LaneReader
from service.gateway.fanout.viewer import Viewer

# A finished job's feed outlives its last viewer for a while, so the next viewers (a share
# link opened later, a crowd of late joiners, a reconnect) replay from memory instead of
# each reloading the job from Redis. Bounded in time and in entries held.
RETAIN_ENDED_SECONDS = 60.0
RETAIN_ENDED_ENTRIES = 100_000


@dataclass(frozen=True, slots=True)
class Subscription:
    """A viewer joined to a job's feed: every batch after ``cursor`` reaches ``viewer``;
    ``ended`` says the entry at the cursor is the job's terminal one (nothing will follow)."""

    viewer: Viewer
    feed: JobFeed
    cursor: StreamId
    ended: bool


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
        on_direct_writes: DirectWrites | None = None,
    ) -> None:
        self._redis = redis
        self._on_direct_writes = on_direct_writes
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

    async def subscribe(self, job_id: str, terminal_id: StreamId | None = None) -> Subscription:
        """Register a viewer with the job's feed (created and loaded for the first one).

        ``terminal_id``, the terminal entry the job record names, lets a finished job's
        retained feed serve the viewer; a feed that does not end there (the job was run
        again) is dropped."""
        while True:
            feed = await self._ready_feed(job_id, terminal_id)
            # Dropped while this viewer waited (the viewer that created it left during the
            # load), or rolled back: joining it would wait forever for data. Start again.
            if self._feeds.get(job_id) is feed and not feed.rolled_back:
                break
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.create_task(self._sweep(), name="viewer-sweeper")
        viewer = Viewer(limit=self._viewer_limit)
        # No await between reading the cursor and joining: the viewer misses no batch.
        feed.viewers.add(viewer)
        feed.joins += 1
        return Subscription(viewer, feed, feed.cursor, feed.ended)

    async def _ready_feed(self, job_id: str, terminal_id: StreamId | None) -> JobFeed:
        """The job's feed, created and loaded if need be, once it is ready."""
        feed = self._feeds.get(job_id)
        if job_id in self._retained:
            self._unretain(job_id)
        if feed is not None and feed.rolled_back:
            # Its viewers are leaving to start over; the newcomer reads the stream as it is.
            del self._feeds[job_id]
            feed = None
        elif feed is not None and feed.ended and not feed.viewers and feed.cursor != terminal_id:
            # An ended feed the job record does not confirm (the job was run again, or the
            # caller cannot tell): load the job afresh.
            del self._feeds[job_id]
            feed = None
        if feed is None:
            feed = JobFeed(self._redis, job_id, self._history_limit, self._on_direct_writes)
            self._feeds[job_id] = feed
            task = asyncio.create_task(self._start(feed), name=f"feed-{job_id}")
            self._loading.add(task)
            task.add_done_callback(self._loading.discard)
        try:
            await feed.ready()
        except asyncio.CancelledError:
            # The viewer left while the feed was loading: nobody may be left to drop it (the
            # load may have handed it to its lane reader already).
            if not feed.viewers and self._feeds.get(job_id) is feed:
                del self._feeds[job_id]
                self._stop_reading(feed)
            raise
        return feed

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

    def unsubscribe(self, subscription: Subscription) -> None:
        """Remove a viewer; its feed is dropped when nobody is left."""
        feed = subscription.feed
        feed.viewers.discard(subscription.viewer)
        if feed.viewers:
            return
        if self._feeds.get(feed.job_id) is feed:
            if feed.ended and feed.history_entries is not None:
                self._retain(feed)
                return
            del self._feeds[feed.job_id]
        self._stop_reading(feed)

    def _stop_reading(self, feed: JobFeed) -> None:
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
