"""``/v1/jobs``: submit, read and cancel jobs."""

from __future__ import annotations

import logging

import orjson
from aiohttp import web

from service.contract.errors import BadRequest
from service.contract.events import QUEUED
from service.contract.jobs import is_job_id, parse_job_request
from service.contract.keys import job_record_key
from service.contract.store.cancel import cancel_job as cancel
from service.contract.store.job_reader import job_not_found, missing_job, read_job_with_raw
from service.contract.store.scripts import as_text
from service.contract.store.submit import Receipt, submit_job
from service.gateway.api.access_log import REQUEST_TRACEPARENT
from service.gateway.api.submit import check_submit_rate, idempotency_key_header
from service.gateway.auth import require_api_key, require_canceller, require_viewer
from service.gateway.presence import VIEWER_COUNTS, VIEWER_REPORTER, viewers_of_job
from service.gateway.state import STATE

log = logging.getLogger(__name__)

routes = web.RouteTableDef()


def job_id_from(request: web.Request) -> str:
    """The path's job id, checked for shape before it reaches a Redis key."""
    job_id = request.match_info["job_id"]
    if not is_job_id(job_id):
        raise job_not_found(job_id)
    return job_id


async def read_json(request: web.Request) -> object:
    """The request's JSON body (``POST /v1/jobs``, the AI SDK's chat); a ``BadRequest`` for
    another media type, an empty body or invalid JSON."""
    if request.content_type not in ("application/json", "application/octet-stream", ""):
        raise BadRequest(
            "send the job as JSON (Content-Type: application/json)", code="unsupported_media_type"
        )
    body = await request.read()  # bounded by the app's client_max_size
    if not body:
        raise BadRequest("the body is empty; send a JSON object", code="invalid_json")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}", code="invalid_json") from None


@routes.post("/v1/jobs")
async def submit(request: web.Request) -> web.Response:
    """Accept a generation job: 202 with its id, events URL and viewer token."""
    state = request.app[STATE]
    owner = require_api_key(request, state.settings)
    await check_submit_rate(request, state, owner)
    idempotency = idempotency_key_header(request)
    job_request = parse_job_request(await read_json(request), state.settings)
    job = await submit_job(
        state.redis,
        state.scripts,
        state.settings,
        job_request,
        idempotency_key_value=idempotency,
        owner=owner,
        traceparent=request.get(REQUEST_TRACEPARENT),
    )
    status = QUEUED
    if job.created:
        state.metrics.jobs_submitted.inc()
        log.info(
            "job submitted",
            extra={"job_id": job.id, "owner": owner, "status": QUEUED, "attempt": 0},
        )
    else:
        stored = await state.redis.hget(job_record_key(job.id), "status")
        status = as_text(stored) if stored is not None else QUEUED
    body = Receipt.of(job, status, state.tokens).to_api()
    headers = {"Location": f"/v1/jobs/{job.id}"}
    if not job.created:
        headers["Idempotent-Replayed"] = "true"
    return web.json_response(body, status=202, headers=headers)


@routes.get("/v1/jobs/{job_id}")
async def get_job(request: web.Request) -> web.Response:
    """The job's record and its output so far."""
    state = request.app[STATE]
    job_id = job_id_from(request)
    require_viewer(request, state.settings, state.tokens, job_id)
    record, text, raw_output = await read_job_with_raw(state.redis, state.settings, job_id)
    return web.json_response(
        record.to_api(output=text, viewers=state.hub.viewer_count(job_id), raw_output=raw_output),
        dumps=lambda obj: orjson.dumps(obj).decode(),
    )


@routes.get("/v1/jobs/{job_id}/viewers")
async def get_viewers(request: web.Request) -> web.Response:
    """How many viewers the job has now over every gateway: what a page polls, instead of the
    whole record."""
    state = request.app[STATE]
    job_id = job_id_from(request)
    require_viewer(request, state.settings, state.tokens, job_id)
    if not await state.redis.exists(job_record_key(job_id)):
        raise await missing_job(state.redis, state.settings, job_id)
    here = request.app[VIEWER_COUNTS].of(job_id)
    gateway_id = request.app[VIEWER_REPORTER].gateway_id
    count = await viewers_of_job(state.redis, job_id, gateway_id, here)
    return web.json_response({"id": job_id, "viewers": count})


@routes.delete("/v1/jobs/{job_id}")
async def cancel_job(request: web.Request) -> web.Response:
    """Cancel: viewers get ``cancelled`` now; the worker closes its upstream call."""
    state = request.app[STATE]
    job_id = job_id_from(request)
    owner = await state.redis.hget(job_record_key(job_id), "owner")
    if owner is None and not await state.redis.exists(job_record_key(job_id)):
        raise await missing_job(state.redis, state.settings, job_id)
    allowed = require_canceller(
        request, state.settings, state.tokens, job_id, as_text(owner or b"")
    )
    if await cancel(state.redis, state.scripts, state.settings, job_id):
        state.metrics.jobs_cancelled.inc()
        attempt, worker = await state.redis.hmget(job_record_key(job_id), "attempt", "worker")
        log.info(
            "job cancelled",
            extra={
                "job_id": job_id,
                "status": "cancelled",
                "attempt": int(attempt or 0),
                "worker_id": as_text(worker) if worker is not None else None,
                "by": allowed,
            },
        )
    return web.json_response({"id": job_id, "status": "cancelled"})
