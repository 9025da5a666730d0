"""Every error the gateway answers is JSON: ``{"error": {"code", "message"}}``."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from redis.exceptions import OutOfMemoryError

from service.contract.errors import RateLimited, TokenRelayError
from service.contract.store.redis_client import is_redis_failure

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(status: int, code: str, message: str) -> web.Response:
    """A JSON error body with the given status."""
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


def json_error(request: web.Request, exc: Exception) -> web.Response | None:
    """The JSON answer to an exception a handler raised: domain errors, aiohttp's HTTP errors
    (400 and up), Redis outages; None for anything else (the caller raises it again).

    Called by the access log's middleware (``access_log.py``) in its own frame rather than
    by a middleware of its own: an event stream keeps every middleware's frame for hours.
    """
    if isinstance(exc, TokenRelayError):
        response = error_response(exc.status, exc.code, exc.message)
        if isinstance(exc, RateLimited):
            response.headers["Retry-After"] = str(max(1, round(exc.retry_after)))
        return response
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            return None
        code = exc.reason.lower().replace(" ", "_")
        response = error_response(exc.status, code, exc.text or exc.reason)
        for name in ("Allow", "Retry-After"):
            if name in exc.headers:
                response.headers[name] = exc.headers[name]
        return response
    if isinstance(exc, OutOfMemoryError):
        log.error("redis is out of memory", extra={"path": request.path})
        response = error_response(
            503, "redis_out_of_memory", "the job store is full; nothing was accepted"
        )
        response.headers["Retry-After"] = "5"
        return response
    if not is_redis_failure(exc):
        return None
    log.warning(
        "redis unavailable",
        extra={"path": request.path, "error": f"{type(exc).__name__}: {exc}"},
    )
    response = error_response(503, "redis_unavailable", "the job store is unreachable")
    response.headers["Retry-After"] = "1"
    return response
