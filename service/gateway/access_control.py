"""Who may call from where, and how often: CORS allow-list, per-client rate limits and
open-stream limits."""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from ipaddress import ip_address

from aiohttp import web
from pydantic import IPvAnyNetwork

from service.contract.errors import RateLimited
from service.contract.keys import rate_limit_key
from service.contract.settings import Settings
from service.contract.store.redis_client import AnyRedis
from service.gateway.api.errors import Handler, error_response

_CORS_METHODS = "GET, HEAD, POST, PUT, DELETE, OPTIONS"
# The Durable Streams protocol's request and response headers (/v1/stream/) are in the lists.
_CORS_HEADERS = (
    "Authorization, Content-Type, Idempotency-Key, Last-Event-ID, If-None-Match, Stream-Seq, "
    "Stream-TTL, Stream-Expires-At, Stream-Closed, Stream-Forked-From, Stream-Fork-Offset, "
    "Stream-Fork-Sub-Offset, Producer-Id, Producer-Epoch, Producer-Seq"
)
_CORS_EXPOSE = (
    "Location, Retry-After, Idempotent-Replayed, X-TokenRelay-Job-Id, X-TokenRelay-Events-Url, "
    "X-TokenRelay-Job-Url, X-TokenRelay-Viewer-Token, ETag, Stream-Next-Offset, Stream-Cursor, "
    "Stream-Up-To-Date, Stream-Closed, Stream-TTL, Stream-Expires-At, Stream-SSE-Data-Encoding, "
    "Producer-Epoch, Producer-Seq, Producer-Expected-Seq, Producer-Received-Seq"
)


def client_address(request: web.Request, settings: Settings) -> str:
    """The caller's address: the peer, unless the peer is a trusted proxy; then the rightmost
    ``X-Forwarded-For`` entry that is not a trusted proxy (entries left of it are whatever the
    client sent, so they cannot pick its rate-limit bucket)."""
    peer = request.remote or "unknown"
    trusted = settings.trusted_proxies
    if not trusted or not _is_trusted(peer, trusted):
        return peer
    hops = [
        hop.strip()
        for header in request.headers.getall("X-Forwarded-For", ())
        for hop in header.split(",")
        if hop.strip()
    ]
    for hop in reversed(hops):
        if not _is_trusted(hop, trusted):
            return hop
    return hops[0] if hops else peer  # only proxies on the way: the first one asked


def _is_trusted(address: str, networks: list[IPvAnyNetwork]) -> bool:
    try:
        ip = ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def _same_origin(request: web.Request, origin: str) -> bool:
    return origin in (
        f"{request.scheme}://{request.host}",
        f"http://{request.host}",
        f"https://{request.host}",
    )


def install_cors(app: web.Application, settings: Settings) -> web.middleware:  # type: ignore[valid-type]
    """Refuse calls from origins not allowed; give allowed origins CORS headers on every
    response, including errors and event streams (added as the response is prepared, since a
    stream's headers go out before its handler returns). Returns the middleware, to install
    inside the access log's."""
    allowed = frozenset(settings.cors_origins)

    def cross_origin(request: web.Request) -> str | None:
        origin = request.headers.get("Origin")
        if origin is None or _same_origin(request, origin):
            return None
        return origin

    # Not a coroutine: it returns the handler's own awaitable (or a ready answer) for aiohttp
    # to await, so no frame of it stays on the stack of a request that lasts (an event
    # stream holds its frames for hours, each one memory per viewer).
    @web.middleware
    def cors(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
        origin = cross_origin(request)
        if origin is None:
            return handler(request)
        if origin not in allowed:
            return _answer(
                error_response(403, "origin_not_allowed", f"origin {origin[:100]!r} is not allowed")
            )
        if request.method == "OPTIONS":
            return _answer(web.Response(status=204))
        return handler(request)

    async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
        origin = cross_origin(request)
        if origin is None or origin not in allowed:
            return
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"
        response.headers["Access-Control-Allow-Methods"] = _CORS_METHODS
        response.headers["Access-Control-Allow-Headers"] = _CORS_HEADERS
        response.headers["Access-Control-Expose-Headers"] = _CORS_EXPOSE
        response.headers["Access-Control-Max-Age"] = "600"

    app.on_response_prepare.append(add_headers)
    return cors


async def _answer(response: web.StreamResponse) -> web.StreamResponse:
    return response


class RateLimiter:
    """Fixed-window counters in Redis, so every gateway enforces one shared limit."""

    def __init__(self, redis: AnyRedis, window_seconds: int = 60) -> None:
        self._redis = redis
        self._window = window_seconds

    async def check(self, scope: str, who: str, limit: int) -> None:
        """Count one request of ``who``; raise :class:`RateLimited` past ``limit`` per window."""
        if limit <= 0:
            return
        now = time.time()
        window = int(now // self._window)
        digest = hashlib.sha256(who.encode()).hexdigest()[:16]  # no raw keys in key names
        key = rate_limit_key(scope, digest, window)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.incr(key)
            pipe.expire(key, self._window * 2, nx=True)
            count, _ = await pipe.execute()
        if int(count) > limit:
            retry_after = (window + 1) * self._window - now
            raise RateLimited(
                f"more than {limit} {scope} requests per {self._window} s",
                retry_after=retry_after,
            )


class StreamSlots:
    """Open event streams per client address in this process."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._open: Counter[str] = Counter()

    @contextmanager
    def hold(self, who: str) -> Iterator[None]:
        """Occupy a slot for the duration of a stream; 429 when the client has too many."""
        self.take(who)
        try:
            yield
        finally:
            self.give_back(who)

    def take(self, who: str) -> None:
        """Occupy a slot until :meth:`give_back` (``hold`` without a generator and its context
        manager kept per stream); 429 when the client has too many."""
        if self._limit and self._open[who] >= self._limit:
            raise RateLimited(
                f"more than {self._limit} open event streams from one client", retry_after=5
            )
        self._open[who] += 1

    def give_back(self, who: str) -> None:
        """Free a slot :meth:`take` occupied."""
        self._open[who] -= 1
        if not self._open[who]:
            del self._open[who]
