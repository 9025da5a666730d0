"""Who may do what: API keys to submit, viewer tokens (or a key) to read a job, and to cancel
it its cancel token, the API key that submitted it, or an admin key."""

from __future__ import annotations

import hashlib
import hmac

from aiohttp import web

from service.contract.errors import Forbidden, Unauthorized
from service.contract.settings import Settings
from service.contract.store.job_tokens import JobTokens


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


# The header (or query parameter) that carries a job's cancel token.
CANCEL_TOKEN_HEADER = "X-Cancel-Token"
CANCEL_TOKEN_QUERY = "cancel_token"


def api_key_owner(request: web.Request, settings: Settings) -> str | None:
    """An id of the caller's API key (never the key itself), or None without a valid key.

    Every configured key is compared in constant time so timing tells nothing about which
    key nearly matched.
    """
    given = _bearer(request)
    if given is None:
        return None
    matched: str | None = None
    for key in (*settings.api_keys, *settings.admin_api_keys):
        secret = key.get_secret_value()
        if hmac.compare_digest(given.encode(), secret.encode()):
            matched = key_id(secret)
    return matched


def key_id(secret: str) -> str:
    """The id an API key is known by in records and logs."""
    return hashlib.sha256(secret.encode()).hexdigest()[:12]


def require_canceller(
    request: web.Request, settings: Settings, tokens: JobTokens, job_id: str, job_owner: str
) -> str:
    """Who may cancel ``job_id``: the holder of its cancel token, the API key that submitted
    it (when auth is on), or an admin key; anyone else gets 403 (401 without any key when
    auth is on). A viewer token alone cannot cancel. Returns how the caller was let in."""
    token = request.headers.get(CANCEL_TOKEN_HEADER) or request.query.get(CANCEL_TOKEN_QUERY)
    if token and tokens.can_cancel(job_id, token):
        return "cancel_token"
    if settings.auth_enabled:
        owner = require_api_key(request, settings)
        if owner in {key_id(key.get_secret_value()) for key in settings.admin_api_keys}:
            return "admin"
        if job_owner and hmac.compare_digest(owner, job_owner):
            return "owner"
    raise Forbidden(
        f"cancelling job {job_id!r} needs its cancel token ({CANCEL_TOKEN_HEADER} or "
        f"?{CANCEL_TOKEN_QUERY}=, given to its submitter), the API key that submitted it, or "
        "an admin key",
        code="cancel_forbidden",
    )


def require_api_key(request: web.Request, settings: Settings) -> str:
    """The caller's key id; with auth off, every caller is ``anonymous``."""
    if not settings.auth_enabled:
        return "anonymous"
    owner = api_key_owner(request, settings)
    if owner is None:
        if _bearer(request) is None:
            raise Unauthorized("an API key is required: `Authorization: Bearer <key>`")
        raise Unauthorized("the API key is not valid", code="invalid_api_key")
    return owner


def require_viewer(
    request: web.Request, settings: Settings, tokens: JobTokens, job_id: str
) -> None:
    """Reading a job needs its viewer token (``?token=``) or an API key, when auth is on."""
    token = request.query.get("token")
    if token:
        tokens.check(job_id, token)
        return
    if not settings.auth_enabled:
        return
    if api_key_owner(request, settings) is None:
        raise Forbidden(
            "viewing this job needs its viewer token (?token=) or an API key",
            code="viewer_token_required",
        )
