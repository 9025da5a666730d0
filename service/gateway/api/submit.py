"""What every HTTP submit (``POST /v1/jobs`` and the OpenAI-compatible endpoints) does before
submitting: the per-key and per-address rate limits, and the ``Idempotency-Key`` header."""

from __future__ import annotations

from aiohttp import web

from service.contract.errors import BadRequest
from service.gateway.access_control import client_address
from service.gateway.state import GatewayState


async def check_submit_rate(request: web.Request, state: GatewayState, owner: str) -> None:
    """Count the submit against the caller's address and, with auth on, its API key."""
    limit = state.settings.submit_rate_per_minute
    await state.limiter.check("submit", f"addr:{client_address(request, state.settings)}", limit)
    if owner != "anonymous":
        await state.limiter.check("submit", f"key:{owner}", limit)


def idempotency_key_header(request: web.Request) -> str | None:
    """The ``Idempotency-Key`` header, checked (1 to 255 printable characters)."""
    value = request.headers.get("Idempotency-Key")
    if value is None:
        return None
    if not 1 <= len(value) <= 255 or not value.isprintable():
        raise BadRequest(
            "Idempotency-Key must be 1 to 255 printable characters", code="invalid_idempotency_key"
        )
    return value
