"""Errors in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``."""

from __future__ import annotations

import math

from aiohttp import web

_KEYS_URL = "https://platform.openai.com/account/api-keys"


class OpenAIError(Exception):
    """An error answered the way OpenAI answers it: status, error object, extra headers."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, object]:
        """The JSON body OpenAI sends with this error."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def response(self) -> web.Response:
        """This error as an HTTP response."""
        return web.json_response(self.body(), status=self.status, headers=self.headers)


def missing_api_key() -> OpenAIError:
    """401 for a request without a Bearer key."""
    return OpenAIError(
        401,
        "You didn't provide an API key. You need to provide your API key in an "
        "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY). "
        f"You can obtain an API key from {_KEYS_URL}.",
    )


def invalid_api_key(key: str) -> OpenAIError:
    """401 for a wrong key; like OpenAI, shows only the key's ends."""
    shown = f"{key[:3]}***{key[-4:]}" if len(key) > 8 else "***"
    return OpenAIError(
        401,
        f"Incorrect API key provided: {shown}. You can find your API key at {_KEYS_URL}.",
        code="invalid_api_key",
    )


def model_not_found(model: str) -> OpenAIError:
    """404 for a model the simulator was not configured with."""
    return OpenAIError(
        404,
        f"The model `{model}` does not exist or you do not have access to it.",
        code="model_not_found",
    )


def rate_limited(model: str, retry_after: float) -> OpenAIError:
    """429 with ``Retry-After`` (whole seconds, or a decimal when below one)."""
    seconds = _retry_after_text(retry_after)
    return OpenAIError(
        429,
        f"Rate limit reached for {model} in organization org-simulated on requests per min "
        f"(RPM): Limit 3, Used 3, Requested 1. Please try again in {seconds}s. "
        "Visit https://platform.openai.com/account/rate-limits to learn more.",
        type="requests",
        code="rate_limit_exceeded",
        headers={
            "Retry-After": seconds,
            "retry-after-ms": str(round(retry_after * 1000)),
            "x-ratelimit-limit-requests": "3",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": f"{seconds}s",
        },
    )


def server_error() -> OpenAIError:
    """500, as OpenAI words it."""
    return OpenAIError(
        500,
        "The server had an error while processing your request. Sorry about that!",
        type="server_error",
    )


def invalid_url(method: str, path: str) -> OpenAIError:
    """404 for a path the API does not have."""
    return OpenAIError(404, f"Invalid URL ({method} {path})")


def _retry_after_text(seconds: float) -> str:
    if seconds >= 1 or seconds == 0:
        return str(math.ceil(seconds))
    return f"{seconds:g}"
