"""What the OpenAI endpoints share with the native API: submitting a job with the same auth,
limits and idempotency, the job's links as response headers, reading a job's record, and an
SSE response with bounded writes."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiohttp import web

from service.contract.errors import Unavailable
from service.contract.jobs import JobRequest
from service.contract.store.submit import submit_job
from service.gateway.api.submit import check_submit_rate, idempotency_key_header
from service.gateway.auth import require_api_key
from service.gateway.state import STATE, GatewayState

log = logging.getLogger(__name__)

JOB_ID_HEADER = "X-TokenRelay-Job-Id"
EVENTS_URL_HEADER = "X-TokenRelay-Events-Url"
JOB_URL_HEADER = "X-TokenRelay-Job-Url"
VIEWER_TOKEN_HEADER = "X-TokenRelay-Viewer-Token"
# Only in the answer to the call that created the job: what cancels it (as X-Cancel-Token).
CANCEL_TOKEN_HEADER = "X-TokenRelay-Cancel-Token"


@dataclass(frozen=True, slots=True)
class StartedJob:
    """A job submitted for an OpenAI call, with the headers that lead to it natively."""

    id: str
    model: str
    headers: dict[str, str]


def check_submitter(request: web.Request) -> str:
    """Auth as for ``POST /v1/jobs``: the caller's key id (``anonymous`` with auth off)."""
    return require_api_key(request, request.app[STATE].settings)


async def start_job(request: web.Request, owner: str, job_request: JobRequest) -> StartedJob:
    """Submit ``job_request`` as ``POST /v1/jobs`` would (rate limits, ``Idempotency-Key``)."""
    state = request.app[STATE]
    await check_submit_rate(request, state, owner)
    job = await submit_job(
        state.redis,
        state.scripts,
        state.settings,
        job_request,
        idempotency_key_value=idempotency_key_header(request),
        owner=owner,
    )
    if job.created:
        state.metrics.jobs_submitted.inc()
        log.info("job submitted", extra={"job_id": job.id, "owner": owner, "api": request.path})
    model = job_request.model or state.settings.model
    headers = {**job_headers(state, job.id), CANCEL_TOKEN_HEADER: state.tokens.issue_cancel(job.id)}
    return StartedJob(id=job.id, model=model, headers=headers)


def job_headers(state: GatewayState, job_id: str) -> dict[str, str]:
    """Where the job is in the native API: id, events URL (with a viewer token), record."""
    token = state.tokens.issue(job_id)
    return {
        JOB_ID_HEADER: job_id,
        EVENTS_URL_HEADER: f"/v1/jobs/{job_id}/events?token={token}",
        JOB_URL_HEADER: f"/v1/jobs/{job_id}",
        VIEWER_TOKEN_HEADER: token,
    }


def check_streaming_allowed(state: GatewayState) -> None:
    """New streams are refused while the gateway shuts down."""
    if state.shutting_down:
        raise Unavailable("the gateway is shutting down; reconnect", code="shutting_down")
