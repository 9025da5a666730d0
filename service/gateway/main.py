"""Serving the gateway until a stop signal, then shutting down gracefully."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiohttp import web

from service.contract.settings import Settings
from service.contract.store.redis_client import connect, warm_up
from service.gateway.app import create_app

log = logging.getLogger(__name__)


async def serve_gateway(
    settings: Settings,
    stop: asyncio.Event,
    *,
    reuse_port: bool = False,
    ready: Callable[[], None] | None = None,
) -> None:
    """Listen on ``host:port`` until ``stop`` is set; ``ready()`` once listening.

    ``reuse_port``: bind with ``SO_REUSEPORT``, one of the processes of
    ``tokenrelay gateway --processes N`` (service/cli/gateway_processes.py).

    On stop, aiohttp stops accepting, the app's shutdown hook ends every viewer stream (so
    clients reconnect elsewhere), then in-flight requests get ``shutdown_grace_seconds``.
    """
    redis = connect(settings.required_redis_url)
    try:
        await warm_up(redis, settings.required_redis_url)
        app = await create_app(settings, redis)
        runner = web.AppRunner(
            app,
            handler_cancellation=True,
            shutdown_timeout=settings.shutdown_grace_seconds,
            access_log=None,
        )
        await runner.setup()
        # A deep accept queue: a reconnect storm arrives all at once.
        site = web.TCPSite(
            runner,
            settings.host,
            settings.port,
            reuse_address=True,
            reuse_port=reuse_port or None,
            backlog=4096,
        )
        await site.start()
        if ready is not None:
            ready()
        log.info("gateway listening", extra={"url": f"http://{settings.host}:{settings.port}"})
        try:
            await stop.wait()
        finally:
            await runner.cleanup()
    finally:
        await redis.aclose()
    log.info("gateway stopped")
