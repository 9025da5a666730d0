"""Who may do what: API keys for submit/cancel, viewer tokens (or a key) for reading a job."""

from __future__ import annotations

import hashlib
import hmac

from aiohttp import web

from service.contract.errors import Forbidden, Unauthorized
from service.contract.settings import Settings
from service.contract.store.viewer_tokens import ViewerTokens


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def api_key_owner(request: web.Request, settings: Settings) -> str | None:
    """An id of the caller's API key (never the key itself), or None without a valid key.

    Every configured key is compared in constant time so timing tells nothing about which
    key nearly matched.
    """
    given = _bearer(request)
    if given is None:
        return None
    matched: str | None = None
    for key in settings.api_keys:
        secret = key.get_secret_value()
        if hmac.compare_digest(given.encode(), secret.encode()):
            matched = hashlib.sha256(secret.encode()).hexdigest()[:12]
    return matched


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
    request: web.Request, settings: Settings, tokens: ViewerTokens, job_id: str
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
