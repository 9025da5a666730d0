"""The one exception hierarchy of tokenrelay.

HTTP-facing errors carry their status and a stable ``code``; the gateway's error
middleware turns any of them into ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations


class TokenRelayError(Exception):
    """Base of every tokenrelay error."""

    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class BadRequest(TokenRelayError):
    status = 400
    code = "bad_request"


class Unauthorized(TokenRelayError):
    status = 401
    code = "unauthorized"


class Forbidden(TokenRelayError):
    status = 403
    code = "forbidden"


class NotFound(TokenRelayError):
    status = 404
    code = "not_found"


class Conflict(TokenRelayError):
    status = 409
    code = "conflict"


class Gone(TokenRelayError):
    status = 410
    code = "gone"


class PayloadTooLarge(TokenRelayError):
    status = 413
    code = "payload_too_large"


class RateLimited(TokenRelayError):
    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: float, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class ConfigurationError(TokenRelayError):
    """A process cannot run with the settings it was given."""

    code = "configuration"


class Unavailable(TokenRelayError):
    status = 503
    code = "unavailable"


class UpstreamError(TokenRelayError):
    """The upstream model API failed; ``retryable`` says whether another attempt may help."""

    status = 502
    code = "upstream_error"

    def __init__(
        self,
        message: str,
        *,
        code: str = "upstream_error",
        retryable: bool,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.retryable = retryable
        self.retry_after = retry_after


class Fenced(TokenRelayError):
    """A worker's write was refused: its attempt is no longer the job's current one."""

    code = "fenced"


class JobCancelled(TokenRelayError):
    """The job was cancelled while a worker was running it."""

    code = "cancelled"


class WritesLost(TokenRelayError):
    """Redis no longer holds writes it acknowledged (a restart from an older state): the
    attempt must start over with a ``reset``."""

    code = "redis_data_lost"
