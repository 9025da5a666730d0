"""One log line and the HTTP metrics of every request, and the request's trace id.

The line names the route template (``/v1/jobs/{job_id}/events``), never the raw URL: query
strings carry viewer tokens. The job id of the path, when there is one, goes into its own
field. Event streams are logged when they end, with their whole duration.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Final

from aiohttp import web

from service.contract.jobs import is_job_id
from service.contract.telemetry.log_context import bind_fields, unbind_fields
from service.contract.telemetry.tracing import TRACEPARENT, Tracing, new_traceparent, trace_id_of
from service.gateway.api.errors import Handler, json_error
from service.gateway.metrics import GatewayMetrics

log = logging.getLogger("tokenrelay.access")

REQUEST_TRACEPARENT: Final = web.RequestKey("traceparent", str)
EVENTS_ROUTE: Final = "/v1/jobs/{job_id}/events"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Probes, scrapes and page assets: logged at DEBUG, so INFO shows the API's traffic.
_QUIET_PREFIXES = ("/healthz", "/readyz", "/metrics", "/static/", "/vendor/")
_CLIENT_CLOSED = 499  # nginx's code for "the client went away before the answer"


def route_of(request: web.Request) -> str:
    """The matched route's template; ``unmatched`` for a 404 of the router."""
    resource = request.match_info.route.resource
    if resource is None:
        return "unmatched"
    return resource.canonical


def _trace_context(request: web.Request, tracing: Tracing) -> tuple[str, str]:
    """The request's ``(trace id, traceparent)``: the recording span's when tracing is on,
    else the caller's ``traceparent`` passed on, else a new one."""
    trace_id = tracing.current_trace_id()
    traceparent = tracing.current_traceparent()
    if trace_id is not None and traceparent is not None:
        return trace_id, traceparent
    incoming = request.headers.get(TRACEPARENT, "").strip().lower()
    incoming_id = trace_id_of(incoming)
    if incoming_id is not None:
        return incoming_id, incoming
    traceparent = new_traceparent()
    return traceparent[3:35], traceparent


def access_log(metrics: GatewayMetrics, tracing: Tracing) -> web.middleware:  # type: ignore[valid-type]
    """The middleware; put it first so it sees the answer every other one settled on. It also
    answers what a handler raised as JSON (``json_error``), in the same frame."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        start = time.perf_counter()
        route = route_of(request)
        method = request.method if request.method in _METHODS else "OTHER"
        trace_id, traceparent = _trace_context(request, tracing)
        request[REQUEST_TRACEPARENT] = traceparent
        job_id = request.match_info.get("job_id")
        # Bound and unbound by hand, not with log_fields: an event stream keeps this frame
        # for hours, and the generator and context manager would stay with it.
        if job_id is not None and is_job_id(job_id):
            token = bind_fields(trace_id=trace_id, job_id=job_id)
        else:
            token = bind_fields(trace_id=trace_id)
        status = 500
        try:
            try:
                response = await handler(request)
            except Exception as exc:
                answer = json_error(request, exc)
                if answer is None:
                    raise
                response = answer
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except asyncio.CancelledError:
            status = _CLIENT_CLOSED
            raise
        finally:
            seconds = time.perf_counter() - start
            metrics.child(metrics.http_requests, method, route, str(status)).inc()
            if route != EVENTS_ROUTE:
                metrics.child(metrics.http_seconds, method, route).observe(seconds)
            quiet = request.path.startswith(_QUIET_PREFIXES) and status < 400
            log.log(
                logging.DEBUG if quiet else logging.INFO,
                "request",
                extra={
                    "method": method,
                    "route": route,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 1),
                },
            )
            unbind_fields(token)

    return middleware
