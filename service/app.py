"""The gateway application: routes, middleware, shared state, graceful shutdown."""

from __future__ import annotations

import logging

from aiohttp import web
from redis.asyncio import Redis

from service import api_events, api_health, api_jobs
from service.access_control import RateLimiter, StreamSlots, cors_middleware
from service.fanout import FeedHub
from service.http_errors import json_errors
from service.metrics import GatewayMetrics
from service.scripts import Scripts
from service.settings import Settings
from service.state import STATE, GatewayState
from service.viewer_tokens import ViewerTokens, shared_secret
from service.web_page import add_page_routes

log = logging.getLogger(__name__)


async def create_app(settings: Settings, redis: Redis) -> web.Application:
    """Build the gateway on an existing Redis client (the caller owns and closes it)."""
    configured = settings.viewer_token_secret
    secret = await shared_secret(
        redis, configured.get_secret_value().encode() if configured is not None else None
    )
    state = GatewayState(
        settings=settings,
        redis=redis,
        scripts=Scripts.register(redis),
        hub=FeedHub(redis, settings.viewer_buffer_frames, settings.replay_cache_entries),
        tokens=ViewerTokens(secret, settings.viewer_token_seconds),
        metrics=GatewayMetrics(),
        limiter=RateLimiter(redis),
        stream_slots=StreamSlots(settings.max_streams_per_client),
    )
    app = web.Application(
        middlewares=[json_errors, cors_middleware(settings)],
        client_max_size=settings.max_body_bytes,
    )
    app[STATE] = state
    app.add_routes(api_jobs.routes)
    app.add_routes(api_events.routes)
    app.add_routes(api_health.routes)
    add_page_routes(app)
    app.on_shutdown.append(_end_streams)
    app.on_cleanup.append(_stop_feeds)
    return app


async def _end_streams(app: web.Application) -> None:
    """Stop taking streams and end the open ones, so viewers reconnect to another gateway."""
    state = app[STATE]
    state.shutting_down = True
    log.info("gateway shutting down", extra={"viewers": state.hub.total_viewers})
    state.hub.close_all("shutdown")


async def _stop_feeds(app: web.Application) -> None:
    await app[STATE].hub.stop()
