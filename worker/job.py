"""Running one delivered job: attempts against the upstream, retries, and the terminal event."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from redis.backoff import EqualJitterBackoff

from service.contract.errors import Fenced, JobCancelled, UpstreamError, WritesLost
from service.contract.events import DONE, FAILED
from service.contract.jobs import JobRecord, now_ms
from service.contract.keys import dead_letter_key, job_keys, job_raw_output_key, job_record_key
from service.contract.settings import Settings
from service.contract.store.redis_client import AnyRedis, is_redis_failure
from service.contract.store.scripts import Scripts, as_text
from service.contract.telemetry.log_context import log_fields, update_fields
from service.contract.telemetry.tracing import TRACEPARENT, Tracing, trace_id_of
from worker.code_extractor import CodeExtractor
from worker.metrics import WorkerMetrics
from worker.prompts import build_messages
from worker.upstream import ChatRequest, Finished, TextDelta, UpstreamClient, UsageReport
from worker.writer import AttemptWriter

log = logging.getLogger(__name__)


class Outcome(Enum):
    """What the runner does with the queue entry after a job run."""

    ACK = "ack"  # the job is terminal (or not ours to run): remove the entry
    KEEP = "keep"  # another worker owns the job now, or we hand it back: leave the entry


@dataclass(slots=True)
class JobContext:
    """What every job run needs from its worker process."""

    redis: AnyRedis
    scripts: Scripts
    settings: Settings
    upstream: UpstreamClient
    worker_id: str
    metrics: WorkerMetrics
    tracing: Tracing = field(default_factory=Tracing)


@dataclass(slots=True)
class RunningJob:
    """A job this process is running; the runner's monitors read and stop it through this."""

    job_id: str
    entry_id: str
    queue: str  # the queue partition the entry is on
    attempt: int = 0
    stop_reason: str | None = None
    task: asyncio.Task[Any] | None = None
    started: float = field(default_factory=time.monotonic)
    # With ``on_abandon: "cancel"``: the grace (ms) and since when (ms) it counts at the latest
    # (the job's creation: a job nobody ever watched is abandoned too).
    abandon_grace_ms: int | None = None
    created_ms: int = 0

    def stop(self, reason: str) -> None:
        """Ask the run to end now (cancelled job, lost lease, shutdown)."""
        if self.stop_reason is None and self.task is not None:
            self.stop_reason = reason
            self.task.cancel()


@dataclass(slots=True)
class AttemptResult:
    finish_reason: str
    usage: dict[str, Any] | None


async def run_job(ctx: JobContext, job: RunningJob) -> Outcome:
    """Run ``job`` to a terminal event or until it is no longer ours; never raises for the job's
    own failures (those become a ``failed`` event)."""
    with log_fields(job_id=job.job_id, attempt=job.attempt):
        ctx.metrics.running.inc()
        try:
            return await _run(ctx, job)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if job.stop_reason is None or task is None or task.cancelling() > 1:
                raise
            task.uncancel()
            ctx.metrics.jobs_stopped.labels(job.stop_reason).inc()
            log.info("job stopped", extra={"reason": job.stop_reason})
            return Outcome.ACK if job.stop_reason == "ended" else Outcome.KEEP
        except Fenced:
            ctx.metrics.jobs_stopped.labels("fenced").inc()
            log.warning("job fenced: another worker runs it now")
            return Outcome.KEEP
        except JobCancelled:
            ctx.metrics.jobs_stopped.labels("ended").inc()
            log.info("job stopped", extra={"reason": "ended"})
            return Outcome.ACK
        finally:
            ctx.metrics.running.dec()


async def _run(ctx: JobContext, job: RunningJob) -> Outcome:
    reply = await _start_attempt(ctx, job, expected="", reason="redelivered", announce=False)
    if reply is not None:
        return reply
    raw = await ctx.redis.hgetall(job_record_key(job.job_id))
    record = JobRecord.from_hash(raw)
    if record.job_request.on_abandon == "cancel":
        job.abandon_grace_ms = int(record.job_request.abandon_grace_seconds * 1000)
        job.created_ms = int(record.created_at)
    # The trace the submitter started (W3C traceparent in the record): this run continues it.
    traceparent = as_text(raw[TRACEPARENT.encode()]) if TRACEPARENT.encode() in raw else None
    update_fields(trace_id=trace_id_of(traceparent))
    log.info("attempt started", extra={"status": "running"})
    if job.attempt == 1:
        ctx.metrics.queue_wait.observe(max(0, now_ms() - int(record.created_at)) / 1000)
    attributes = {"tokenrelay.job_id": job.job_id, "tokenrelay.worker_id": ctx.worker_id}
    with ctx.tracing.span(
        "tokenrelay.job", kind="consumer", parent=traceparent, attributes=attributes
    ):
        return await _attempts(ctx, job, record)


async def _attempts(ctx: JobContext, job: RunningJob, record: JobRecord) -> Outcome:
    """Attempts against the upstream until one finishes, one fails for good, or it is over."""
    request = record.job_request
    chat = ChatRequest(
        model=record.model,
        messages=build_messages(
            prompt=request.prompt,
            messages=[m.model_dump() for m in request.messages] if request.messages else None,
            language=request.language,
            target=request.target,
        ),
        temperature=request.temperature,
        max_tokens=request.max_tokens,
        stop=request.stop,
    )
    deadline = time.monotonic() + ctx.settings.upstream_total_timeout * ctx.settings.max_attempts
    while True:
        writer = AttemptWriter(
            ctx.redis,
            ctx.scripts,
            ctx.settings,
            job.job_id,
            job.attempt,
            on_written=ctx.metrics.event_written,
            # Each attempt extracts afresh: a retried attempt's text starts over (reset).
            extractor=CodeExtractor(ctx.settings.languages) if request.output == "code" else None,
        )
        try:
            try:
                result = await _stream_attempt(ctx, job, chat, writer)
            finally:
                await writer.close()
        except Exception as exc:
            if not (isinstance(exc, (UpstreamError, WritesLost)) or is_redis_failure(exc)):
                raise
            # A Redis outage or lost writes restart the attempt (this writer cannot write
            # any more); the fence keeps that safe whatever the failed write did.
            failure = exc if isinstance(exc, UpstreamError) else _restart(exc)
            if not isinstance(exc, UpstreamError) and time.monotonic() > deadline:
                raise  # Redis keeps failing: the entry stays pending and is re-delivered
            if isinstance(exc, UpstreamError) and not _should_retry(
                ctx.settings, exc, job.attempt, deadline
            ):
                await _fail(job, writer, exc)
                ctx.metrics.jobs_failed.labels(exc.code).inc()
                return Outcome.ACK
            ctx.metrics.upstream_retries.labels(failure.code).inc()
            delay = _retry_delay(ctx.settings, failure, job.attempt)
            log.warning(
                "attempt failed; retrying",
                extra={
                    "job_id": job.job_id,
                    "attempt": job.attempt,
                    "code": failure.code,
                    "delay": round(delay, 3),
                },
            )
            await asyncio.sleep(delay)
            reply = await _next_attempt(ctx, job, failure.code, deadline)
            if reply is not None:
                return reply
            continue
        record_fields: dict[str, Any] = {"finish_reason": result.finish_reason}
        if result.usage is not None:
            record_fields["usage"] = result.usage
        await writer.finish(
            DONE, {"finish_reason": result.finish_reason, "usage": result.usage}, record_fields
        )
        ctx.metrics.jobs_done.inc()
        log.info("job done", extra={"job_id": job.job_id, "attempt": job.attempt, "status": DONE})
        return Outcome.ACK


async def _next_attempt(
    ctx: JobContext, job: RunningJob, reason: str, deadline: float
) -> Outcome | None:
    """Replace the current attempt, riding out a Redis outage until ``deadline`` (the script
    is idempotent for a resend of the same retry, so retrying it is safe)."""
    failures = 0
    while True:
        try:
            return await _start_attempt(ctx, job, expected=str(job.attempt), reason=reason)
        except Exception as exc:
            if not is_redis_failure(exc) or time.monotonic() > deadline:
                raise
            failures += 1
            log.warning(
                "cannot start the next attempt; retrying",
                extra={"job_id": job.job_id, "attempt": job.attempt, "error": repr(exc)},
            )
            await asyncio.sleep(_retry_delay(ctx.settings, _restart(exc), failures))


async def _start_attempt(
    ctx: JobContext, job: RunningJob, *, expected: str, reason: str, announce: bool = True
) -> Outcome | None:
    """Start the next attempt (fenced); a non-None outcome means there is nothing to run.

    ``announce`` logs the start (the first attempt's is logged once its trace is known)."""
    reply = await ctx.scripts.start_attempt(
        keys=[*job_keys(job.job_id), job_raw_output_key(job.job_id)],
        args=[
            ctx.worker_id,
            now_ms(),
            expected,
            ctx.settings.max_deliveries,
            reason,
            ctx.settings.retention_seconds,
            job.entry_id if expected == "" else "",
        ],
        client=ctx.redis,
    )
    outcome = as_text(reply[0])
    if outcome == "ok":
        job.attempt = int(reply[1])
        update_fields(attempt=job.attempt)
        if expected == "":
            delivery = "first" if job.attempt == 1 else "redelivered"
            ctx.metrics.jobs_started.labels(delivery).inc()
        if announce:
            log.info(
                "attempt started",
                extra={"job_id": job.job_id, "attempt": job.attempt, "status": "running"},
            )
        return None
    log.info("job not started", extra={"job_id": job.job_id, "outcome": outcome})
    if outcome == "exhausted":
        ctx.metrics.jobs_failed.labels("worker_lost").inc()
        ctx.metrics.dead_lettered.labels("too_many_deliveries").inc()
        log.warning(
            "job failed", extra={"job_id": job.job_id, "status": FAILED, "code": "worker_lost"}
        )
        # The job killed or outlived every worker that took it: keep it for inspection.
        await ctx.redis.xadd(
            dead_letter_key(),
            {"job": job.job_id, "entry": job.entry_id, "reason": "too many deliveries"},
            maxlen=100_000,
            approximate=True,
        )
    if outcome == "fenced":
        return Outcome.KEEP
    return Outcome.ACK  # missing, terminal, duplicate entry, or failed after too many deliveries


async def _stream_attempt(
    ctx: JobContext, job: RunningJob, chat: ChatRequest, writer: AttemptWriter
) -> AttemptResult:
    finish_reason = "stop"
    usage: dict[str, Any] | None = None
    headers = {"X-TokenRelay-Job": job.job_id, "X-TokenRelay-Attempt": str(job.attempt)}
    call = ctx.metrics.upstream_call(chat.model)
    outcome = "aborted"  # a Redis write failed, or the job was fenced
    with ctx.tracing.span("tokenrelay.attempt", attributes={"tokenrelay.attempt": job.attempt}):
        try:
            stream = ctx.upstream.stream_chat(chat, headers=headers)
            async with contextlib.aclosing(stream) as events:
                async for event in events:
                    if isinstance(event, TextDelta):
                        call.text()
                        writer.add_token(event.text)
                    elif isinstance(event, Finished):
                        finish_reason = event.finish_reason
                    elif isinstance(event, UsageReport):
                        call.usage(event.usage)
                        usage = event.usage
            outcome = "ok"
        except UpstreamError as exc:
            outcome = exc.code
            raise
        except (asyncio.CancelledError, JobCancelled):
            outcome = "cancelled"
            raise
        finally:
            call.finish(outcome)
        await writer.flush()
    return AttemptResult(finish_reason=finish_reason, usage=usage)


def _restart(exc: Exception) -> UpstreamError:
    """Redis trouble is retried like a transient upstream failure, with the same backoff."""
    if isinstance(exc, WritesLost):
        return UpstreamError(exc.message, code=exc.code, retryable=True)
    return UpstreamError(f"redis: {exc}", code="redis_unavailable", retryable=True)


def _should_retry(settings: Settings, exc: UpstreamError, attempt: int, deadline: float) -> bool:
    return exc.retryable and attempt < settings.max_attempts and time.monotonic() < deadline


def _retry_delay(settings: Settings, exc: UpstreamError, attempt: int) -> float:
    backoff = EqualJitterBackoff(cap=settings.retry_max_seconds, base=settings.retry_base_seconds)
    delay = backoff.compute(attempt)
    if exc.retry_after is not None:
        delay = max(delay, min(exc.retry_after, settings.retry_max_seconds))
    return delay


async def _fail(job: RunningJob, writer: AttemptWriter, exc: UpstreamError) -> None:
    error = {"code": exc.code, "message": exc.message}
    await writer.finish(FAILED, error, {"error": error, "finish_reason": "error"})
    log.warning(
        "job failed",
        extra={"job_id": job.job_id, "attempt": job.attempt, "code": exc.code, "status": FAILED},
    )
