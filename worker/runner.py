"""The worker process: takes jobs from the queue's consumer group, runs many at once, keeps
their leases alive, notices cancels, reclaims jobs of dead workers, and drains on shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import orjson
from redis.exceptions import ResponseError

from service.contract.errors import BadRequest, Conflict, Gone, NotFound
from service.contract.events import RUNNING
from service.contract.jobs import is_job_id, now_ms, parse_job_request
from service.contract.keys import (
    QUEUE_GROUP,
    QUEUE_PARTITIONS,
    dead_letter_key,
    job_record_key,
    job_watchers_key,
    queue_keys,
)
from service.contract.store.cancel import cancel_job
from service.contract.store.redis_client import AnyRedis, is_redis_failure
from service.contract.store.scripts import as_text
from service.contract.store.submit import create_job
from worker.job import JobContext, Outcome, RunningJob, run_job

log = logging.getLogger(__name__)

# Set as the idle time of an entry handed back on shutdown, so any worker reclaims it at once.
HAND_BACK_IDLE_MS = 10**12
RENEW_CONCURRENCY = 64  # lease renewals in flight at once


def default_worker_id() -> str:
    """Unique per process, readable in logs and `XINFO CONSUMERS`."""
    return f"{socket.gethostname()}-{os.getpid()}"


class Worker:
    """Runs up to ``worker_concurrency`` jobs at once from the shared queue."""

    def __init__(self, ctx: JobContext) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.redis: AnyRedis = ctx.redis
        self.running: dict[str, RunningJob] = {}
        self._stopping = asyncio.Event()
        # Set after the drain, as the upkeep loops (leases, cancels) are cancelled; they
        # check it too (the intake loops check ``_stopping``): on Python 3.11 a cancellation
        # can be lost inside redis-py's socket timeout (asyncio.wait_for, gh-86296), and a
        # loop that missed it would keep the worker from exiting.
        self._closing = False
        self._slots = asyncio.Semaphore(self.settings.worker_concurrency)
        self._waiting: dict[str, str] = {}  # entry id -> queue, read but not yet running
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        """Work until :meth:`stop` is called, then drain and hand back what is left."""
        await ensure_group(self.redis)
        log.info(
            "worker started",
            extra={
                "worker_id": self.ctx.worker_id,
                "concurrency": self.settings.worker_concurrency,
            },
        )
        # One blocking reader per queue partition: every partition is served as soon as it
        # has work, whichever node of a cluster holds it.
        intake = [
            asyncio.create_task(self._supervise("consume", partial(self._consume_loop, queue)))
            for queue in queue_keys()
        ]
        intake.append(asyncio.create_task(self._supervise("reclaim", self._reclaim_loop)))
        upkeep = [
            asyncio.create_task(self._supervise("lease", self._lease_loop)),
            asyncio.create_task(self._supervise("cancel-watch", self._cancel_loop)),
        ]
        await self._stopping.wait()
        for task in intake:
            task.cancel()
        await self._drain()
        loops = intake + upkeep
        self._closing = True
        for task in loops:
            task.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        log.info("worker stopped", extra={"worker_id": self.ctx.worker_id})

    def stop(self) -> None:
        """Stop taking jobs; running ones get the grace period to finish."""
        self._stopping.set()

    async def _supervise(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        """Keep a loop alive across Redis outages, with a pause between restarts."""
        while not self._closing:
            try:
                await loop()
                return
            except Exception as exc:
                # A loop that died would silently stop a partition's intake, reclaims or
                # lease renewals for good: whatever went wrong, it is logged and restarted.
                if is_redis_failure(exc):
                    log.warning(
                        "redis error in worker loop; retrying",
                        extra={"loop": name, "error": repr(exc)},
                    )
                else:
                    log.exception("worker loop crashed; restarting", extra={"loop": name})
                await asyncio.sleep(1.0)
                if isinstance(exc, ResponseError) and str(exc).startswith("NOGROUP"):
                    # Redis came back without the queue (restarted empty, or the key was
                    # deleted): recreate it, or no job submitted from now on would be read.
                    with contextlib.suppress(Exception):
                        await ensure_group(self.redis)

    async def _consume_loop(self, queue: str) -> None:
        # First the entries already delivered to this consumer (a reply lost to a connection
        # error, or a restart under the same worker id), then new ones.
        position = "0"
        while not self._stopping.is_set():
            free = await self._wait_for_slot()
            history = position != ">"
            reply: Any = await self.redis.xreadgroup(
                QUEUE_GROUP,
                self.ctx.worker_id,
                {queue: position},
                count=free,
                block=None if history else 2000,
            )
            entries = [entry for _stream, stream_entries in reply or () for entry in stream_entries]
            if history:
                # Page through our pending entries; past the last one, read new entries.
                position = as_text(entries[-1][0]) if len(entries) == free else ">"
            for entry_id, fields in entries:
                await self._take(queue, as_text(entry_id), fields)

    async def _reclaim_loop(self) -> None:
        """Claim entries whose worker stopped renewing its lease (it died or hung)."""
        lease_ms = int(self.settings.lease_seconds * 1000)
        while not self._stopping.is_set():
            await asyncio.sleep(self.settings.lease_seconds / 3)
            for queue in queue_keys():
                free = await self._wait_for_slot()
                reply: Any = await self.redis.xautoclaim(
                    queue, QUEUE_GROUP, self.ctx.worker_id, lease_ms, "0-0", count=free
                )
                for entry_id, fields in reply[1]:
                    log.warning(
                        "reclaimed a job from a silent worker",
                        extra={"entry_id": as_text(entry_id)},
                    )
                    await self._take(queue, as_text(entry_id), fields)

    async def _lease_loop(self) -> None:
        """Renew every running job's lease (and of entries waiting for a slot); a job whose
        entry was reclaimed elsewhere stops."""
        while not self._closing:
            await asyncio.sleep(self.settings.lease_seconds / 3)
            await self._renew_leases(list(self._waiting.items()))
            jobs = list(self.running.values())
            owned = await self._renew_leases([(job.entry_id, job.queue) for job in jobs])
            for job, still_ours in zip(jobs, owned, strict=True):
                if not still_ours:
                    log.warning("lease lost", extra={"job_id": job.job_id, "attempt": job.attempt})
                    job.stop("lease_lost")

    async def _renew_leases(self, entries: list[tuple[str, str]]) -> list[Any]:
        """Renew ``(entry id, queue)`` leases; whether each is still ours. Concurrent calls
        rather than a pipeline (the entries sit on different partitions, i.e. cluster nodes,
        and cluster pipelines do not run scripts), at most RENEW_CONCURRENCY at once so a
        thousand jobs do not take a thousand connections from the ones writing tokens."""
        gate = asyncio.Semaphore(RENEW_CONCURRENCY)

        async def renew(entry_id: str, queue: str) -> Any:
            async with gate:
                return await self.ctx.scripts.renew_lease(
                    keys=[queue],
                    args=[QUEUE_GROUP, self.ctx.worker_id, entry_id],
                    client=self.redis,
                )

        return await asyncio.gather(*(renew(entry_id, queue) for entry_id, queue in entries))

    async def _cancel_loop(self) -> None:
        """Stop jobs that were cancelled (or taken over) within ``cancel_poll_seconds``."""
        while not self._closing:
            await asyncio.sleep(self.settings.cancel_poll_seconds)
            jobs = [job for job in self.running.values() if job.attempt]
            if not jobs:
                continue
            watched = [job for job in jobs if job.abandon_grace_ms is not None]
            async with self.redis.pipeline(transaction=False) as pipe:
                for job in jobs:
                    pipe.hmget(job_record_key(job.job_id), "status", "attempt")
                for job in watched:
                    pipe.zrange(job_watchers_key(job.job_id), -1, -1, withscores=True)
                replies = await pipe.execute()
            states, vouches = replies[: len(jobs)], replies[len(jobs) :]
            for job, (status, attempt) in zip(jobs, states, strict=True):
                if status is None or as_text(status) != RUNNING:
                    job.stop("ended")
                elif int(attempt) > job.attempt:
                    # Only a later attempt fences us: an earlier one is this very job's
                    # state read just before its own retry started (attempts only grow).
                    job.stop("fenced")
            for job, vouch in zip(watched, vouches, strict=True):
                await self._cancel_if_abandoned(job, vouch)

    async def _cancel_if_abandoned(self, job: RunningJob, vouch: list[Any]) -> None:
        """Cancel a job nobody has watched, on any gateway, for its grace (``abandoned``)."""
        assert job.abandon_grace_ms is not None
        last_watched = max([job.created_ms, *(int(score) for _, score in vouch)])
        if now_ms() - last_watched <= job.abandon_grace_ms:
            return
        log.info("job abandoned", extra={"job_id": job.job_id, "last_watched": last_watched})
        try:
            await cancel_job(self.redis, self.ctx.scripts, self.settings, job.job_id, "abandoned")
        except (Conflict, NotFound, Gone) as exc:
            # It ended (or went) meanwhile: the next poll stops it.
            log.debug("abandoned job ended first", extra={"job_id": job.job_id, "code": exc.code})
            return
        job.stop("ended")

    async def _wait_for_slot(self) -> int:
        """Wait for a free slot; how many entries one read may take. Each partition reader
        takes its share, so a worker holds about as many entries as it can run."""
        await self._slots.acquire()
        self._slots.release()
        free = self.settings.worker_concurrency - len(self.running) - len(self._waiting)
        return max(1, -(-free // QUEUE_PARTITIONS))

    async def _take(self, queue: str, entry_id: str, fields: dict[Any, Any] | None) -> None:
        if not fields:  # a pending entry whose data was deleted: nothing left to run
            await self._ack(queue, entry_id)
            return
        job_id = await self._job_for_entry(entry_id, fields)
        if job_id is None:
            await self._ack(queue, entry_id)
            return
        running = self.running.get(job_id)
        if running is not None:
            if running.entry_id != entry_id:  # a duplicate entry of a job we run already
                await self._ack(queue, entry_id)
            # else: we reclaimed our own entry after renewals failed (a Redis outage); the
            # job is still ours and still running.
            return
        # Until a slot frees up the entry's lease is renewed like a running job's, so no
        # other worker reclaims it meanwhile.
        self._waiting[entry_id] = queue
        try:
            await self._slots.acquire()
        finally:
            del self._waiting[entry_id]
        job = RunningJob(job_id=job_id, entry_id=entry_id, queue=queue)
        self.running[job_id] = job
        task = asyncio.create_task(self._run_one(job), name=f"job-{job_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_one(self, job: RunningJob) -> None:
        current = asyncio.current_task()
        assert current is not None
        job.task = current
        try:
            outcome = await run_job(self.ctx, job)
            if outcome is Outcome.ACK:
                await self._ack(job.queue, job.entry_id)
            elif job.stop_reason == "shutdown":
                await self._hand_back(job.queue, job.entry_id)
        except Exception:
            log.exception(
                "job run crashed; its entry stays pending for reclaim",
                extra={"job_id": job.job_id, "attempt": job.attempt},
            )
        finally:
            self.running.pop(job.job_id, None)
            self._slots.release()

    async def _job_for_entry(self, entry_id: str, fields: dict[Any, Any]) -> str | None:
        """The job id an entry names, creating the job for a direct ``request`` entry."""
        job_field = fields.get(b"job")
        request_field = fields.get(b"request")
        if request_field is None and job_field is None:
            await self._dead_letter(entry_id, fields, "entry has neither `job` nor `request`")
            return None
        job_id = as_text(job_field) if job_field else "q" + entry_id.replace("-", "_")
        if not is_job_id(job_id):
            await self._dead_letter(entry_id, fields, "`job` is not a valid job id")
            return None
        if request_field is None:
            return job_id
        try:
            request = parse_job_request(orjson.loads(request_field), self.settings)
        except (BadRequest, ValueError) as exc:
            await self._dead_letter(entry_id, fields, f"invalid request: {exc}")
            return None
        await create_job(self.redis, self.ctx.scripts, self.settings, request, job_id)
        return job_id

    async def _ack(self, queue: str, entry_id: str) -> None:
        # Both commands are idempotent, so no transaction is needed (cluster pipelines are not
        # transactional).
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xack(queue, QUEUE_GROUP, entry_id)
            pipe.xdel(queue, entry_id)
            await pipe.execute()

    async def _hand_back(self, queue: str, entry_id: str) -> None:
        await self.redis.xclaim(
            queue,
            QUEUE_GROUP,
            self.ctx.worker_id,
            0,
            [entry_id],
            idle=HAND_BACK_IDLE_MS,
            justid=True,
        )

    async def _dead_letter(self, entry_id: str, fields: dict[Any, Any], reason: str) -> None:
        log.error("queue entry dead-lettered", extra={"entry_id": entry_id, "reason": reason})
        self.ctx.metrics.dead_lettered.labels("invalid_entry").inc()
        await self.redis.xadd(
            dead_letter_key(), {**fields, b"entry": entry_id, b"reason": reason}, maxlen=100_000
        )

    async def _drain(self) -> None:
        """Give running jobs the grace period, then stop them and hand their entries back."""
        deadline = time.monotonic() + self.settings.shutdown_grace_seconds
        while self._tasks and time.monotonic() < deadline:
            await asyncio.wait(set(self._tasks), timeout=deadline - time.monotonic())
        for job in list(self.running.values()):
            job.stop("shutdown")
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5.0)


async def ensure_group(redis: AnyRedis) -> None:
    """Create every queue partition and its consumer group if they do not exist yet."""
    for queue in queue_keys():
        try:
            await redis.xgroup_create(queue, QUEUE_GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
