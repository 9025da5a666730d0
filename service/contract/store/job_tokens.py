"""Capabilities scoped to one job, HMAC-signed with one secret shared by every process:
viewer tokens (expiring, read-only: what a share link carries) and cancel tokens (given only
to the submitter; a viewer token cannot cancel)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

from service.contract.errors import Forbidden
from service.contract.keys import signing_secret_key
from service.contract.settings import Settings
from service.contract.store.redis_client import AnyRedis


class JobTokens:
    """Issues and checks a job's tokens: ``<expiry>.<signature>`` viewer tokens for
    ``GET .../events`` and the record, and ``c.<signature>`` cancel tokens."""

    def __init__(self, secret: bytes, ttl_seconds: int) -> None:
        self._secret = secret
        self._ttl = ttl_seconds

    def issue(self, job_id: str, *, now: float | None = None) -> str:
        """A token that opens ``job_id`` (and nothing else) until it expires."""
        expires = int((now if now is not None else time.time()) + self._ttl)
        return f"{expires}.{self._sign('view', job_id, expires)}"

    def check(self, job_id: str, token: str, *, now: float | None = None) -> None:
        """Raise :class:`Forbidden` unless ``token`` is a valid, unexpired token for ``job_id``."""
        expires_text, _, signature = token.partition(".")
        if not expires_text.isdigit() or not signature:
            raise Forbidden("malformed viewer token", code="invalid_token")
        expected = self._sign("view", job_id, int(expires_text))
        if not hmac.compare_digest(expected, signature):
            raise Forbidden("the viewer token does not open this job", code="invalid_token")
        if int(expires_text) < (now if now is not None else time.time()):
            raise Forbidden("the viewer token has expired", code="token_expired")

    def issue_cancel(self, job_id: str) -> str:
        """The token that cancels ``job_id``: it lasts as long as the job (a finished job has
        nothing left to cancel)."""
        return f"c.{self._sign('cancel', job_id, 0)}"

    def can_cancel(self, job_id: str, token: str) -> bool:
        """Whether ``token`` is ``job_id``'s cancel token."""
        expected = self.issue_cancel(job_id)
        return hmac.compare_digest(expected.encode(), token.encode())

    def _sign(self, purpose: str, job_id: str, expires: int) -> str:
        mac = hmac.new(self._secret, f"{purpose}:{job_id}:{expires}".encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(mac.digest()[:20]).decode().rstrip("=")


async def signing_secret(redis: AnyRedis, settings: Settings) -> bytes:
    """The secret every process signs viewer tokens with: ``VIEWER_TOKEN_SECRET`` if set."""
    configured = settings.viewer_token_secret
    return await shared_secret(
        redis, configured.get_secret_value().encode() if configured is not None else None
    )


async def shared_secret(redis: AnyRedis, configured: bytes | None) -> bytes:
    """The signing secret: the configured one, else one generated once and kept in Redis.

    Keeping it in Redis lets every gateway of a deployment check every other's tokens
    without configuration.
    """
    if configured:
        return configured
    await redis.set(signing_secret_key(), secrets.token_hex(32), nx=True)
    stored = await redis.get(signing_secret_key())
    if stored is None:
        raise RuntimeError("the viewer-token secret vanished from Redis right after it was set")
    return stored if isinstance(stored, bytes) else stored.encode()
