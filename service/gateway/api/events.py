"""``GET /v1/jobs/{id}/events``: the job's events as Server-Sent Events, resumable."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp_sse import EventSourceResponse

from service.contract.errors import BadRequest, Unavailable
from service.contract.events import ZERO_ID, StreamId, parse_stream_id
from service.contract.keys import job_record_key
from service.contract.store.job_reader import missing_job
from service.contract.store.redis_client import is_redis_failure
from service.contract.store.scripts import as_text
from service.gateway.access_control import client_address
from service.gateway.api.jobs import job_id_from
from service.gateway.auth import require_viewer
from service.gateway.fanout.direct_write import direct_sink
from service.gateway.fanout.frames import retry_frame
from service.gateway.fanout.viewer_stream import stream_to_viewer
from service.gateway.metrics import ViewerMeter
from service.gateway.presence import VIEWER_COUNTS
from service.gateway.state import STATE

log = logging.getLogger(__name__)

routes = web.RouteTableDef()

# aiohttp-sse's own ping task writes on a fixed timer even while data flows; the viewer loop
# pings instead, only after ``ping_seconds`` without data, so the library's timer is parked.
_PARKED_PING_SECONDS = 10**9


def resume_position(request: web.Request) -> tuple[StreamId, str | None]:
    """Where the client resumes: ``Last-Event-ID`` header, else ``?last_event_id=``."""
    for source, value in (
        ("header", request.headers.get("Last-Event-ID")),
        ("query", request.query.get("last_event_id")),
    ):
        if value:
            try:
                return parse_stream_id(value.strip()), source
            except ValueError:
                raise BadRequest(
                    f"Last-Event-ID {value[:64]!r} is not an event id of this service "
                    "(expected <ms>-<seq>)",
                    code="invalid_last_event_id",
                ) from None
    return ZERO_ID, None


@routes.get("/v1/jobs/{job_id}/events")
async def events(request: web.Request) -> web.StreamResponse:
    """Replay after the client's position, then follow live until the terminal event."""
    state = request.app[STATE]
    job_id = job_id_from(request)
    require_viewer(request, state.settings, state.tokens, job_id)
    position, source = resume_position(request)
    if state.shutting_down:
        raise Unavailable("the gateway is shutting down; reconnect", code="shutting_down")
    address = client_address(request, state.settings)
    await state.limiter.check("stream", f"addr:{address}", state.settings.stream_rate_per_minute)
    with state.stream_slots.hold(address):
        return await _serve_stream(request, job_id, position, source)


async def _serve_stream(
    request: web.Request, job_id: str, position: StreamId, source: str | None
) -> web.StreamResponse:
    state = request.app[STATE]
    status, terminal_id = await state.redis.hmget(job_record_key(job_id), "status", "terminal_id")
    if status is None:
        raise await missing_job(state.redis, state.settings, job_id)
    if source is not None:
        state.metrics.resumes.labels(source).inc()
    terminal = parse_stream_id(as_text(terminal_id)) if terminal_id is not None else None
    if terminal is not None and position >= terminal:
        state.metrics.no_content.inc()
        return web.Response(status=204)

    response = EventSourceResponse(
        ping_interval=_PARKED_PING_SECONDS, send_timeout=state.settings.send_timeout_seconds
    )
    await response.prepare(request)
    meter = ViewerMeter(state.metrics)
    stalled = False

    async def write(data: bytes) -> None:
        # No timer per write: the hub's sweeper aborts a write stuck past send_timeout.
        await response.write(data)
        meter.wrote(data)

    def abort() -> None:
        nonlocal stalled
        stalled = True
        if request.transport is not None:
            request.transport.abort()

    viewer_counts = request.app[VIEWER_COUNTS]
    viewer_counts.join(job_id)
    state.metrics.viewers.inc()
    reason = "client_gone"
    try:
        await write(retry_frame(state.settings.sse_retry_ms))
        outcome = await stream_to_viewer(
            state.redis,
            state.hub,
            job_id,
            position,
            write,
            abort=abort,
            sink=direct_sink(response),  # once the headers are out, with the first write
            terminal_id=terminal,
        )
        reason = outcome.reason
    except ConnectionResetError:
        reason = "send_timeout" if stalled else "client_gone"
    except Exception as exc:
        if not is_redis_failure(exc):
            raise
        # The response has started: no error body can follow. End the stream; the client
        # reconnects and resumes once Redis answers again.
        reason = "redis_error"
        log.warning("stream ended by a redis error", extra={"job_id": job_id, "error": repr(exc)})
    finally:
        viewer_counts.leave(job_id)
        state.metrics.viewers.dec()
        state.metrics.streams_ended.labels(reason).inc()
        meter.finished()
        response.stop_streaming()
    log.debug("viewer stream ended", extra={"job_id": job_id, "reason": reason})
    return response
