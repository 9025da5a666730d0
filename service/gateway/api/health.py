"""Liveness, readiness, metrics and the page's configuration."""

from __future__ import annotations

from aiohttp import web
from redis.exceptions import RedisError

from service.contract.telemetry.exposition import metrics_response
from service.gateway.state import STATE, GatewayState

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """The process is up."""
    return web.json_response({"ok": True})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """Ready to serve: Redis answers and the gateway is not shutting down."""
    reason = await _not_ready(request.app[STATE])
    if reason is not None:
        return web.json_response({"ready": False, "reason": reason}, status=503)
    return web.json_response({"ready": True})


async def _not_ready(state: GatewayState) -> str | None:
    """Why the gateway is not ready, or None; every answer is recorded in the metrics."""
    reason: str | None = None
    if state.shutting_down:
        reason = "shutting down"
    else:
        try:
            await state.redis.ping()
        except RedisError as exc:
            reason = f"redis: {exc}"
    state.metrics.readiness(reason is None)
    return reason


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format; readiness and the queue's figures are read from Redis now."""
    state = request.app[STATE]
    state.metrics.feeds.set(state.hub.feed_count)
    state.metrics.flush()
    await _not_ready(state)
    await state.metrics.queue.refresh(state.redis)
    return metrics_response(state.metrics.registry)


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
            # The upstream is the simulator (UPSTREAM_SIMULATED): the page shows a badge.
            "simulated_upstream": settings.upstream_simulated,
        }
    )
