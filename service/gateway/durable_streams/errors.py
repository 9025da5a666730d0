"""Errors under ``/v1/stream/``: the gateway's JSON error shape (``{"error": {"code",
"message"}}``, which Durable Streams clients do not read: they go by status and headers),
with the protocol's headers where it asks for them (``Stream-Closed``, ``Producer-Epoch``,
…), and the browser security headers on every answer."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from service.contract.errors import RateLimited, TokenRelayError
from service.contract.store.redis_client import is_redis_failure

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_CODES = {
    400: "bad_request",
    403: "forbidden",
    404: "stream_not_found",
    405: "method_not_allowed",
    409: "conflict",
    410: "gone",
    413: "payload_too_large",
}
_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Resource-Policy": "cross-origin",
}


class StreamError(Exception):
    """A refused Durable Streams request: its status, headers and message."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})
        self.code = code or _CODES.get(status, "error")


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    """An error answer with the protocol's and the security headers."""
    response = web.json_response({"error": {"code": code, "message": message}}, status=status)
    response.headers.update(headers or {})
    response.headers.update(_SECURITY_HEADERS)
    return response


def secured(response: web.StreamResponse) -> web.StreamResponse:
    """Add the browser security headers (protocol section 12.7) before it is sent."""
    if not response.prepared:
        response.headers.update(_SECURITY_HEADERS)
    return response


def stream_errors(handler: Handler) -> Handler:
    """Answer every error of a Durable Streams handler with the security headers."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return secured(await handler(request))
        except StreamError as exc:
            return error_response(exc.status, exc.code, exc.message, exc.headers)
        except TokenRelayError as exc:
            headers = {}
            if isinstance(exc, RateLimited):
                headers["Retry-After"] = str(max(1, round(exc.retry_after)))
            return error_response(exc.status, exc.code, exc.message, headers)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            code = exc.reason.lower().replace(" ", "_")
            return error_response(exc.status, code, exc.text or exc.reason)
        except Exception as exc:
            if not is_redis_failure(exc):
                raise
            log.warning("redis unavailable", extra={"path": request.path, "error": repr(exc)})
            return error_response(
                503, "redis_unavailable", "the stream store is unreachable", {"Retry-After": "1"}
            )

    return wrapped
