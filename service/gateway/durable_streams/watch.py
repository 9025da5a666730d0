"""Live reads of the streams clients append to: per gateway process, one blocking ``XREAD``
per stream that has readers waiting (long-polls and SSE), shared by all of them, so Redis
work does not grow with readers. A closure appends a marker entry, which wakes them too."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from service.contract.events import StreamId
from service.contract.store.redis_client import AnyRedis, is_redis_failure
from service.gateway.durable_streams.offsets import entry_id_text, parse_entry_id

log = logging.getLogger(__name__)

BLOCK_MS = 5000  # below the Redis client's socket timeout


class _Watch:
    """One stream's reader: the newest entry id seen, and an event set when it moves."""

    def __init__(self, redis: AnyRedis, key: str, last: StreamId) -> None:
        self.key = key
        self.last = last
        self.waiters = 0
        self.moved = asyncio.Event()
        self.task = asyncio.create_task(self._run(redis), name=f"ds-watch-{key}")

    async def _run(self, redis: AnyRedis) -> None:
        while True:
            try:
                reply = await redis.xread(
                    {self.key: entry_id_text(self.last)}, count=1, block=BLOCK_MS
                )
                if not reply:
                    continue
                newest: list[Any] = list(await redis.xrevrange(self.key, count=1) or [])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not is_redis_failure(exc):
                    log.exception("stream watch crashed; retrying", extra={"key": self.key})
                await asyncio.sleep(0.5)
                continue
            if newest:
                self.last = max(self.last, parse_entry_id(newest[0][0]))
            moved, self.moved = self.moved, asyncio.Event()
            moved.set()


class StreamWatch:
    """The process's stream readers by key, each running while someone waits on it."""

    def __init__(self, redis: AnyRedis) -> None:
        self._redis = redis
        self._watches: dict[str, _Watch] = {}
        self._closing = asyncio.Event()

    @property
    def readers(self) -> int:
        """Streams this process is reading (one blocked Redis connection each)."""
        return len(self._watches)

    @property
    def waiting(self) -> int:
        """Live reads waiting on those streams."""
        return sum(watch.waiters for watch in self._watches.values())

    async def wait(self, key: str, after: StreamId, seconds: float) -> bool:
        """Whether the stream ``key`` got an entry after ``after`` within ``seconds``
        (False also when the gateway shuts down)."""
        watch = self._watches.get(key)
        if watch is None:
            watch = self._watches[key] = _Watch(self._redis, key, after)
        watch.waiters += 1
        try:
            async with asyncio.timeout(seconds):
                while watch.last <= after and not self._closing.is_set():
                    moved = asyncio.ensure_future(watch.moved.wait())
                    closing = asyncio.ensure_future(self._closing.wait())
                    try:
                        await asyncio.wait({moved, closing}, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        moved.cancel()
                        closing.cancel()
        except TimeoutError:
            pass
        finally:
            watch.waiters -= 1
            if not watch.waiters and self._watches.get(key) is watch:
                del self._watches[key]
                watch.task.cancel()
        return watch.last > after

    @property
    def closing(self) -> bool:
        """Whether the gateway is shutting down (live reads end)."""
        return self._closing.is_set()

    async def close(self) -> None:
        """End every wait and reader (gateway shutdown)."""
        self._closing.set()
        tasks = [watch.task for watch in self._watches.values()]
        self._watches.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
