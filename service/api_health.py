"""Liveness, readiness, metrics and the page's configuration."""

from __future__ import annotations

from aiohttp import web
from redis.exceptions import RedisError

from service.state import STATE

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """The process is up."""
    return web.json_response({"ok": True})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """Ready to serve: Redis answers and the gateway is not shutting down."""
    state = request.app[STATE]
    if state.shutting_down:
        return web.json_response({"ready": False, "reason": "shutting down"}, status=503)
    try:
        await state.redis.ping()
    except RedisError as exc:
        return web.json_response({"ready": False, "reason": f"redis: {exc}"}, status=503)
    return web.json_response({"ready": True})


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format."""
    state = request.app[STATE]
    state.metrics.feeds.set(state.hub.feed_count)
    return web.Response(
        body=state.metrics.render(), content_type="text/plain", charset="utf-8",
        headers={"X-Content-Type-Options": "nosniff"},
    )  # fmt: skip


@routes.get("/v1/meta")
async def meta(request: web.Request) -> web.Response:
    """What the page needs to build its form."""
    settings = request.app[STATE].settings
    return web.json_response(
        {
            "languages": settings.languages,
            "models": settings.models,
            "default_model": settings.model,
            "auth": settings.auth_enabled,
        }
    )
