"""The gateway application: routes, middleware, shared state, graceful shutdown."""

from __future__ import annotations

import logging

from aiohttp import web

from service.contract.settings import Settings
from service.contract.store.job_tokens import JobTokens, signing_secret
from service.contract.store.redis_client import AnyRedis
from service.contract.store.redis_metrics import instrument_redis
from service.contract.store.scripts import Scripts
from service.contract.telemetry.log_setup import redact_secrets
from service.contract.telemetry.tracing import Tracing
from service.contract.telemetry.tracing_setup import setup_tracing
from service.gateway import ai_sdk, durable_streams
from service.gateway import openai as openai_compat
from service.gateway.access_control import RateLimiter, StreamSlots, install_cors
from service.gateway.api import events as api_events
from service.gateway.api import health as api_health
from service.gateway.api import jobs as api_jobs
from service.gateway.api.access_log import access_log
from service.gateway.api.page import add_page_routes
from service.gateway.fanout.hub import FeedHub
from service.gateway.metrics import GatewayMetrics
from service.gateway.presence import ViewerCounts, add_viewer_presence
from service.gateway.state import STATE, GatewayState

log = logging.getLogger(__name__)


async def create_app(
    settings: Settings, redis: AnyRedis, *, tracing: Tracing | None = None
) -> web.Application:
    """Build the gateway on an existing Redis client (the caller owns and closes it).

    Without ``tracing``, traces are set up from the ``OTEL_*`` variables (off by default) and
    stopped with the app.
    """
    owned_tracing = tracing is None
    tracing = setup_tracing("tokenrelay-gateway") if tracing is None else tracing
    viewer_counts = ViewerCounts()
    metrics = GatewayMetrics(viewer_counts.counts)
    instrument_redis(redis, metrics.redis)
    secret = await signing_secret(redis, settings)
    redact_secrets(_secrets(settings, secret))
    state = GatewayState(
        settings=settings,
        redis=redis,
        scripts=Scripts.register(redis),
        hub=FeedHub(
            redis,
            settings.viewer_buffer_frames,
            settings.replay_cache_entries,
            ping_seconds=settings.ping_seconds,
            send_timeout=settings.send_timeout_seconds,
            on_direct_writes=metrics.direct_writes,
        ),
        tokens=JobTokens(secret, settings.viewer_token_seconds),
        metrics=metrics,
        limiter=RateLimiter(redis),
        stream_slots=StreamSlots(settings.max_streams_per_client),
    )
    app = web.Application(
        middlewares=[access_log(metrics, tracing)],
        client_max_size=settings.max_body_bytes,
    )
    # Inside the access log (which also answers errors as JSON), so its refusals are logged.
    app.middlewares.append(install_cors(app, settings))
    app[STATE] = state
    app.add_routes(api_jobs.routes)
    app.add_routes(api_events.routes)
    app.add_routes(api_health.routes)
    app.add_routes(openai_compat.routes)
    durable_streams.install(app)
    app.add_routes(ai_sdk.routes)
    add_page_routes(app)
    add_viewer_presence(app, redis, viewer_counts, settings.viewer_report_seconds)
    app.on_shutdown.append(_end_streams)
    app.on_cleanup.append(_stop_feeds)
    if owned_tracing:

        async def stop_tracing(app: web.Application) -> None:
            tracing.shutdown()

        app.on_cleanup.append(stop_tracing)
    return app


def _secrets(settings: Settings, signing_secret: bytes) -> list[str]:
    """Values no log line may show."""
    values = [key.get_secret_value() for key in (*settings.api_keys, *settings.admin_api_keys)]
    if settings.upstream_api_key is not None:
        values.append(settings.upstream_api_key.get_secret_value())
    values.append(signing_secret.decode("utf-8", errors="replace"))
    return values


async def _end_streams(app: web.Application) -> None:
    """Stop taking streams and end the open ones, so viewers reconnect to another gateway."""
    state = app[STATE]
    state.shutting_down = True
    log.info("gateway shutting down", extra={"viewers": state.hub.total_viewers})
    state.hub.close_all("shutdown")


async def _stop_feeds(app: web.Application) -> None:
    await app[STATE].shared_reads.stop()
    await app[STATE].hub.stop()
