"""Submitting jobs: create the record and first event, then enqueue. Used by the gateway and by
backends that submit from Python without holding an HTTP connection.

Queue entry format (``XADD tr:{q<n>}:queue * ...`` on any partition ``n``), for backends that
write to Redis directly:

- ``job`` = an existing job id whose record was created with :func:`create_job`, or
- ``request`` = the job request as JSON (same fields as ``POST /v1/jobs``) and optionally
  ``job`` = the id to create it under; the worker validates it and creates the record.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import orjson

from service.contract.errors import Conflict, Gone, NotFound, Unavailable
from service.contract.events import QUEUED
from service.contract.jobs import JobRequest, new_job_id, now_ms
from service.contract.keys import (
    idempotency_key,
    job_keys,
    job_record_key,
    job_tombstone_key,
    queue_key_for,
    session_key,
)
from service.contract.settings import Settings
from service.contract.store.cancel import cancel_job
from service.contract.store.job_tokens import JobTokens, signing_secret
from service.contract.store.redis_client import AnyRedis
from service.contract.store.replication import wait_for_replicas
from service.contract.store.scripts import Scripts, as_text
from service.contract.telemetry.tracing import TRACEPARENT

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SubmittedJob:
    """The outcome of a submit; ``created`` is false when an idempotent retry found the job."""

    id: str
    created: bool


@dataclass(frozen=True, slots=True)
class Receipt:
    """What a submit answers, over HTTP (``202``) or to a backend that submits directly: the
    job, where to watch it, and the viewer token that opens it (on the page, too)."""

    id: str
    status: str
    viewer_token: str
    cancel_token: str
    created: bool = True

    @classmethod
    def of(cls, job: SubmittedJob, status: str, tokens: JobTokens) -> Receipt:
        """The receipt of a submitted job, with a fresh viewer token and its cancel token."""
        return cls(job.id, status, tokens.issue(job.id), tokens.issue_cancel(job.id), job.created)

    @property
    def events_url(self) -> str:
        """The job's event stream, token included (what a share link opens)."""
        return f"/v1/jobs/{self.id}/events?token={self.viewer_token}"

    def to_api(self) -> dict[str, str]:
        """The JSON body of ``POST /v1/jobs``'s 202."""
        return {
            "id": self.id,
            "status": self.status,
            "events_url": self.events_url,
            "job_url": f"/v1/jobs/{self.id}",
            "viewer_token": self.viewer_token,
            "cancel_token": self.cancel_token,
        }


async def submit_direct(redis: AnyRedis, settings: Settings, request: JobRequest) -> Receipt:
    """Submit without the gateway (a backend that never holds a connection): the same job,
    checks and receipt as ``POST /v1/jobs``. ``request`` comes from :func:`parse_job_request`
    so it meets the same limits."""
    job = await submit_job(redis, Scripts.register(redis), settings, request)
    tokens = JobTokens(await signing_secret(redis, settings), settings.viewer_token_seconds)
    return Receipt.of(job, QUEUED, tokens)


def _model_for(request: JobRequest, settings: Settings) -> str:
    return request.model or settings.model


async def create_job(
    redis: AnyRedis,
    scripts: Scripts,
    settings: Settings,
    request: JobRequest,
    job_id: str,
    *,
    traceparent: str | None = None,
    owner: str = "",
) -> bool:
    """Create the job's record and its ``status: queued`` event; false if it already exists.

    ``traceparent`` (W3C) is stored with the record so the worker continues the job's trace;
    ``owner`` (the submitting API key's id) may cancel it.
    """
    now = now_ms()
    fields: list[str | int] = [
        "id",
        job_id,
        "status",
        QUEUED,
        "created_at",
        now,
        "model",
        _model_for(request, settings),
        "language",
        request.language or "",
        "request",
        request.model_dump_json(exclude_none=True),
        "owner",
        owner,
    ]
    if traceparent is not None:
        fields += [TRACEPARENT, traceparent]
    status_data = orjson.dumps({"status": QUEUED, "attempt": 0}).decode()
    ttl = max(settings.retention_seconds, settings.unfinished_job_seconds)
    tombstone_ttl = settings.tombstone_ttl_seconds
    created = await scripts.create_job(
        keys=[*job_keys(job_id), job_tombstone_key(job_id)],
        args=[ttl, tombstone_ttl, status_data, now, *fields],
        client=redis,
    )
    return created is not None


async def enqueue(redis: AnyRedis, job_id: str) -> None:
    """Put an existing job on the queue (a retried XADD at worst enqueues it twice, which the
    worker detects)."""
    await redis.xadd(queue_key_for(job_id), {"job": job_id})


async def submit_job(
    redis: AnyRedis,
    scripts: Scripts,
    settings: Settings,
    request: JobRequest,
    *,
    idempotency_key_value: str | None = None,
    owner: str = "",
    traceparent: str | None = None,
) -> SubmittedJob:
    """Create and enqueue a job; with an idempotency key, a repeat returns the first job.

    A repeat with the same key but a different request is a :class:`Conflict`.
    """
    job_id = new_job_id()
    idem_key: str | None = None
    if idempotency_key_value is not None:
        idem_key, claimed = await _claim_idempotency(
            redis, settings, owner, idempotency_key_value, request, job_id
        )
        if claimed is not None:
            if await redis.hget(job_record_key(claimed), "status") == QUEUED.encode():
                await enqueue(redis, claimed)  # the first submit may have failed to enqueue
            await _replicated(redis, settings, claimed, idem_key)
            return SubmittedJob(id=claimed, created=False)
    try:
        await create_job(
            redis, scripts, settings, request, job_id, traceparent=traceparent, owner=owner
        )
    except BaseException:
        if idem_key is not None:  # nothing was created: the key is free again
            await redis.delete(idem_key)
        raise
    # Once the job exists the key stays: a client retry after a failed enqueue finds the job
    # and enqueues it again (the worker drops duplicate entries).
    await enqueue(redis, job_id)
    if request.session is not None:
        await _replace_in_session(redis, scripts, settings, owner, request.session, job_id)
    await _replicated(redis, settings, job_id, idem_key)
    return SubmittedJob(id=job_id, created=True)


async def _replace_in_session(
    redis: AnyRedis, scripts: Scripts, settings: Settings, owner: str, session: str, job_id: str
) -> None:
    """Make ``job_id`` the session's job and cancel the one it replaces (reason ``replaced``).

    The swap is one ``SET ... GET``, made after the job exists: of jobs submitted to a session
    at once, each cancels exactly the one whose place it took, so exactly one stays running
    however the submits interleave (the last to swap)."""
    previous = await redis.set(
        session_key(owner, session), job_id, get=True, ex=settings.unfinished_job_seconds
    )
    if previous is None or as_text(previous) == job_id:
        return
    try:
        await cancel_job(redis, scripts, settings, as_text(previous), "replaced")
    except (Conflict, NotFound, Gone) as exc:
        # The previous job ended, or expired, by itself: nothing to replace.
        log.debug("nothing to replace", extra={"job_id": as_text(previous), "code": exc.code})
    else:
        log.info("job replaced", extra={"job_id": as_text(previous), "by": job_id})


async def _replicated(
    redis: AnyRedis, settings: Settings, job_id: str, idem_key: str | None
) -> None:
    """With ``SUBMIT_WAIT_REPLICAS``, answer only once that many replicas hold the job (and
    the idempotency key that finds it again)."""
    wanted = settings.submit_wait_replicas
    if not wanted:
        return
    keys = [job_record_key(job_id), queue_key_for(job_id)]
    if idem_key is not None:
        keys.append(idem_key)
    acked = await wait_for_replicas(redis, keys, wanted, settings.submit_wait_timeout_ms)
    if acked < wanted:
        log.warning("job not replicated in time", extra={"job_id": job_id, "replicas": acked})
        raise Unavailable(
            f"job {job_id} was stored but only {acked} of {wanted} replicas confirmed it within "
            f"{settings.submit_wait_timeout_ms} ms; it may still run. Retry with the same "
            "Idempotency-Key to get this job, not a second one",
            code="replication_timeout",
        )


async def _claim_idempotency(
    redis: AnyRedis,
    settings: Settings,
    owner: str,
    key_value: str,
    request: JobRequest,
    job_id: str,
) -> tuple[str, str | None]:
    """Reserve the key for ``job_id``; return the job id a previous submit stored, if any."""
    digest = hashlib.sha256(f"{owner}\0{key_value}".encode()).hexdigest()
    body_digest = hashlib.sha256(request.model_dump_json().encode()).hexdigest()[:32]
    key = idempotency_key(digest)
    stored = f"{job_id}:{body_digest}"
    if await redis.set(key, stored, nx=True, ex=settings.idempotency_seconds):
        return key, None
    previous = await redis.get(key)
    if previous is None:  # expired between the two calls: treat as new
        await redis.set(key, stored, ex=settings.idempotency_seconds)
        return key, None
    previous_id, _, previous_digest = as_text(previous).partition(":")
    if previous_digest != body_digest:
        raise Conflict(
            "this Idempotency-Key was used with a different request", code="idempotency_conflict"
        )
    return key, previous_id
