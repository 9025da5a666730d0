"""Who watches what: viewers per job on this gateway, and the same reported to Redis so that
``tokenrelay jobs`` can show every job's viewers across all gateways, and a worker can tell
that nobody watches a job any more (``on_abandon: "cancel"``).

Each gateway keeps a hash ``tr:viewers:<gateway id>`` (job id -> viewers) that expires unless
renewed, and scores itself in the sorted set ``tr:gateways`` with the time its report expires;
a gateway that dies simply stops counting after ``3 x VIEWER_REPORT_SECONDS``. Per job, the
sorted set ``job_watchers_key`` holds each gateway that had its viewers, scored with the time
until which it vouches for one: renewed at every report while they watch, set to the report's
time once the last one left. A crashed gateway's vouch runs out by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Iterator
from typing import Any

from aiohttp import web
from redis.exceptions import RedisError

from service.contract.jobs import now_ms
from service.contract.keys import gateway_viewers_key, gateways_key, job_watchers_key
from service.contract.store.redis_client import AnyRedis

log = logging.getLogger(__name__)

# Reports follow a change this soon, so a burst of joins makes one write.
_DEBOUNCE_SECONDS = 0.2
_EXPIRY_REPORTS = 3
# A job's watchers outlive the longest abandon grace (an hour) with room to spare.
_WATCHERS_TTL_MS = 2 * 3600 * 1000


def new_gateway_id() -> str:
    """Unique per gateway, readable: host, pid and a random suffix (tests run several)."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class ViewerCounts:
    """Viewers per job connected to this process; fed by the events handler."""

    def __init__(self) -> None:
        self._by_job: dict[str, int] = {}
        self.changed = asyncio.Event()

    def join(self, job_id: str) -> None:
        """A viewer of ``job_id`` connected."""
        self._by_job[job_id] = self._by_job.get(job_id, 0) + 1
        self.changed.set()

    def leave(self, job_id: str) -> None:
        """A viewer of ``job_id`` left."""
        left = self._by_job.get(job_id, 0) - 1
        if left > 0:
            self._by_job[job_id] = left
        else:
            self._by_job.pop(job_id, None)
        self.changed.set()

    @contextlib.contextmanager
    def watching(self, job_id: str) -> Iterator[None]:
        """A viewer of ``job_id`` connected for the block (any protocol's reader)."""
        self.join(job_id)
        try:
            yield
        finally:
            self.leave(job_id)

    def of(self, job_id: str) -> int:
        """Viewers of ``job_id`` connected to this process now."""
        return self._by_job.get(job_id, 0)

    def counts(self) -> list[int]:
        """The number of viewers of each watched job."""
        return list(self._by_job.values())

    def snapshot(self) -> dict[str, int]:
        """Job id -> viewers, for a report."""
        return dict(self._by_job)


class ViewerReporter:
    """Writes this gateway's :class:`ViewerCounts` to Redis every ``interval`` seconds and soon
    after each change."""

    def __init__(
        self, redis: AnyRedis, counts: ViewerCounts, interval: float, gateway_id: str
    ) -> None:
        self._redis = redis
        self._counts = counts
        self._interval = interval
        self.gateway_id = gateway_id
        self._key = gateway_viewers_key(gateway_id)
        self._reported: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._stopped = False  # checked too: a cancel can be lost in a Redis call on 3.11

    def start(self) -> None:
        """Begin reporting in the background."""
        self._task = asyncio.create_task(self._run(), name="viewer-report")

    async def stop(self) -> None:
        """Stop reporting and withdraw this gateway's report."""
        if self._task is not None:
            self._stopped = True
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            await self._redis.delete(self._key)
            await self._redis.zrem(gateways_key(), self.gateway_id)
        except RedisError as exc:
            log.warning("cannot withdraw the viewer report", extra={"error": str(exc)})

    async def _run(self) -> None:
        while not self._stopped:
            self._counts.changed.clear()
            try:
                await self.report()
            except RedisError as exc:
                log.warning("cannot report viewers to redis", extra={"error": str(exc)})
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._counts.changed.wait()
            await asyncio.sleep(_DEBOUNCE_SECONDS)

    async def report(self) -> None:
        """Write the current counts (one pipeline; the keys are single-key commands, so the
        same code runs on a cluster)."""
        snapshot = self._counts.snapshot()
        if not snapshot and not self._reported:
            return  # nobody watched since the last report: nothing to say
        gone = self._reported - snapshot.keys()
        ttl_ms = int(self._interval * _EXPIRY_REPORTS * 1000)
        now = now_ms()
        async with self._redis.pipeline(transaction=False) as pipe:
            if snapshot:
                pipe.hset(self._key, mapping=snapshot)  # type: ignore[arg-type]
            if gone:
                pipe.hdel(self._key, *gone)
            # Per job (its own slot, single-key commands): vouch for its viewers until the
            # report expires; for a job whose last viewer left, only until now.
            for job_id, until in [
                *((job_id, now + ttl_ms) for job_id in snapshot),
                *((job_id, now) for job_id in gone),
            ]:
                pipe.zadd(job_watchers_key(job_id), {self.gateway_id: until})
                pipe.pexpire(job_watchers_key(job_id), _WATCHERS_TTL_MS)
            pipe.pexpire(self._key, ttl_ms)
            pipe.zadd(gateways_key(), {self.gateway_id: now + ttl_ms})
            pipe.zremrangebyscore(gateways_key(), "-inf", now)
            await pipe.execute()
        self._reported = set(snapshot)


async def viewers_by_job(redis: AnyRedis) -> dict[str, int]:
    """Viewers per job over every gateway whose report is live."""
    gateways: Any = await redis.zrangebyscore(gateways_key(), now_ms(), "+inf")
    totals: dict[str, int] = {}
    for gateway in gateways:
        gateway_id = gateway.decode() if isinstance(gateway, bytes) else str(gateway)
        report: Any = await redis.hgetall(gateway_viewers_key(gateway_id))
        for job, count in report.items():
            job_id = job.decode() if isinstance(job, bytes) else str(job)
            totals[job_id] = totals.get(job_id, 0) + int(count)
    return totals


async def viewers_of_job(redis: AnyRedis, job_id: str, gateway_id: str, here: int) -> int:
    """Viewers of one job over every gateway: ``here`` (this gateway's live count) plus the
    last report of each other gateway that still vouches for one (``job_watchers_key``). One
    ``ZRANGEBYSCORE``, then one ``HGET`` per other gateway with viewers of the job."""
    watchers: Any = await redis.zrangebyscore(job_watchers_key(job_id), now_ms(), "+inf")
    total = here
    for gateway in watchers:
        other = gateway.decode() if isinstance(gateway, bytes) else str(gateway)
        if other != gateway_id:
            count: Any = await redis.hget(gateway_viewers_key(other), job_id)
            total += int(count or 0)
    return total


VIEWER_COUNTS = web.AppKey("viewer_counts", ViewerCounts)
VIEWER_REPORTER = web.AppKey("viewer_reporter", ViewerReporter)


def add_viewer_presence(
    app: web.Application, redis: AnyRedis, counts: ViewerCounts, interval: float
) -> None:
    """Make ``counts`` reachable by the handlers of ``app`` and report them while it runs."""
    reporter = ViewerReporter(redis, counts, interval, new_gateway_id())
    app[VIEWER_COUNTS] = counts
    app[VIEWER_REPORTER] = reporter

    async def start(app: web.Application) -> None:
        reporter.start()

    async def stop(app: web.Application) -> None:
        await reporter.stop()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
