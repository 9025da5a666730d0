"""Liveness, readiness, metrics and the page's configuration."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST
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
        state.metrics.readiness(False)
        return web.json_response({"ready": False, "reason": "shutting down"}, status=503)
    try:
        await state.redis.ping()
    except RedisError as exc:
        state.metrics.readiness(False)
        return web.json_response({"ready": False, "reason": f"redis: {exc}"}, status=503)
    state.metrics.readiness(True)
    return web.json_response({"ready": True})


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format; the queue's figures are read from Redis now."""
    state = request.app[STATE]
    state.metrics.feeds.set(state.hub.feed_count)
    await state.metrics.queue.refresh(state.redis)
    return web.Response(
        body=state.metrics.render(),
        headers={"Content-Type": CONTENT_TYPE_LATEST, "X-Content-Type-Options": "nosniff"},
    )


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
