"""Errors in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``.

The gateway's own middleware answers ``{"error": {"code", "message"}}``; the OpenAI SDKs
read ``type``, ``param`` and ``code`` instead, so every handler of this package is wrapped
by :func:`openai_errors`, which answers first.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from redis.exceptions import RedisError

from service.contract.errors import BadRequest, RateLimited, TokenRelayError, UpstreamError

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


class OpenAIBadRequest(BadRequest):
    """A 400 that names the request parameter at fault (OpenAI's ``param``)."""

    def __init__(self, message: str, *, param: str | None, code: str) -> None:
        super().__init__(message, code=code)
        self.param = param


def error_type(status: int) -> str:
    """OpenAI's ``type`` for an HTTP status."""
    return _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")


def error_body(
    status: int, message: str, *, code: str | None, param: str | None = None
) -> dict[str, dict[str, str | None]]:
    """The error object OpenAI's SDKs read."""
    return {"error": {"message": message, "type": error_type(status), "param": param, "code": code}}


def error_response(
    status: int, message: str, *, code: str | None, param: str | None = None
) -> web.Response:
    """An OpenAI-style JSON error answer."""
    return web.json_response(error_body(status, message, code=code, param=param), status=status)


def openai_errors(handler: Handler) -> Handler:
    """Answer the handler's errors in OpenAI's shape (domain errors, aiohttp's HTTP errors
    such as a body over the size limit, Redis outages)."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except TokenRelayError as exc:
            param = exc.param if isinstance(exc, OpenAIBadRequest) else None
            response = error_response(exc.status, exc.message, code=exc.code, param=param)
            if isinstance(exc, RateLimited):
                response.headers["Retry-After"] = str(max(1, round(exc.retry_after)))
            if isinstance(exc, UpstreamError):
                # The job already used its attempts: an SDK retry would only submit it again.
                response.headers["X-Should-Retry"] = "false"
            return response
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            code = exc.reason.lower().replace(" ", "_")
            return error_response(exc.status, exc.text or exc.reason, code=code)
        except RedisError as exc:
            log.warning("redis unavailable", extra={"path": request.path, "error": str(exc)})
            response = error_response(503, "the job store is unreachable", code="redis_unavailable")
            response.headers["Retry-After"] = "1"
            return response

    return wrapped
