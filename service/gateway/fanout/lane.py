"""A lane reader: every live job of one lane, tailed for this process with one blocking
multi-key ``XREAD`` (legal on Redis Cluster: a lane's keys share one hash slot), woken to pick
up a new job by an entry on its own control stream in the same slot."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from service.contract.events import format_stream_id
from service.contract.keys import lane_wake_key
from service.contract.store.redis_client import AnyRedis, is_redis_failure
from service.gateway.fanout.feed import JobFeed
from service.gateway.fanout.frames import entries_from_reply
from service.gateway.fanout.stream_tail import StreamsReply, StreamTail

log = logging.getLogger(__name__)

READ_BLOCK_MS = 5000
READ_COUNT = 1000
# A lane whose hand-out took longer than this waits as long again before its next read, up to
# MAX_PAUSE: under heavy fan-out (thousands of viewers on one job) each viewer then gets
# fewer, larger writes, and the event loop keeps half its time for everything else
# (reconnects, other lanes). Light fan-out never pauses, so its latency is untouched.
PAUSE_AFTER_SECONDS = 0.002
MAX_PAUSE_SECONDS = 0.05
# While a crowd joins the lane's jobs (at least JOIN_BURST viewers since its last read: a
# reconnect storm, a share link opened by thousands), such a lane waits JOIN_BURST_FACTOR
# times its hand-out, up to MAX_JOIN_BURST_PAUSE: the joiners' handshakes and replays get
# four fifths of the loop instead of half, and the viewers already following get the same
# tokens in fewer, larger writes, at most that much later, until the crowd is in.
JOIN_BURST = 10
JOIN_BURST_FACTOR = 4
MAX_JOIN_BURST_PAUSE = 0.1
WAKE_TTL_SECONDS = 60


def pause_after(took: float, joined: int) -> float:
    """How long a lane waits before its next read, after a hand-out that took ``took``
    seconds, ``joined`` viewers having joined its jobs since its previous read."""
    if took <= PAUSE_AFTER_SECONDS:
        return 0.0
    if joined >= JOIN_BURST:
        return min(took * JOIN_BURST_FACTOR, MAX_JOIN_BURST_PAUSE)
    return min(took, MAX_PAUSE_SECONDS)


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
        # Checked by the loop too: on Python 3.11 a cancellation can be lost inside a read's
        # timeout (asyncio.wait_for in redis-py, asyncio.timeout in stream_tail; gh-86296).
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
        # A connection per run: a task started after this one ended never shares it.
        tail = StreamTail(self._redis)
        try:
            await self._read_loop(tail)
        finally:
            await tail.close()

    async def _read_loop(self, tail: StreamTail) -> None:
        failed = False
        while self._feeds and not self._stopped:
            try:
                if failed:
                    await self._check_positions()
                    failed = False
                streams = {key: format_stream_id(feed.cursor) for key, feed in self._feeds.items()}
                streams[self._wake_key] = self._wake_cursor
                self._woken = False
                reply = await tail.read(streams, READ_COUNT, READ_BLOCK_MS)
            except Exception as exc:
                # The reader must outlive any failure: if it died, every viewer of the
                # lane would wait forever.
                failed = True
                for feed in self._feeds.values():
                    feed.redis_failed()
                if is_redis_failure(exc):
                    log.warning(
                        "lane read failed; retrying", extra={"lane": self.lane, "error": repr(exc)}
                    )
                else:
                    log.exception("lane read crashed; retrying", extra={"lane": self.lane})
                await asyncio.sleep(0.5)
                continue
            started = time.monotonic()
            try:
                self._dispatch(reply)
            except Exception:
                # Not one viewer's failure may stop the lane for the others.
                log.exception("lane hand-out crashed", extra={"lane": self.lane})
            pause = pause_after(time.monotonic() - started, self._take_joins())
            if pause:
                await asyncio.sleep(pause)

    def _take_joins(self) -> int:
        """Viewers that joined the lane's jobs since the last call."""
        joined = 0
        for feed in self._feeds.values():
            joined += feed.joins
            feed.joins = 0
        return joined

    async def _check_positions(self) -> None:
        """After a failure, before reading on: a Redis that came back from an older copy (a
        lagging replica promoted, an older AOF) may hold less than the feeds handed out."""
        feeds = list(self._feeds.values())
        async with self._redis.pipeline(transaction=False) as pipe:
            for feed in feeds:
                pipe.xrevrange(feed.key, count=1)
            replies = await pipe.execute()
        for feed, reply in zip(feeds, replies, strict=True):
            last = entries_from_reply(reply)
            feed.check_position(last[0] if last else None)
            if feed.rolled_back:
                self.remove(feed)

    def _dispatch(self, reply: StreamsReply) -> None:
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
            if feed.ended or feed.rolled_back:
                self.remove(feed)
