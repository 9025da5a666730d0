"""Serving the gateway until a stop signal, then shutting down gracefully."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable

from aiohttp import web

from service.contract.settings import Settings
from service.contract.store.redis_client import connect, warm_up
from service.gateway.app import create_app

log = logging.getLogger(__name__)

# The cyclic garbage collector, tuned for a process holding thousands of connections: with
# CPython's defaults (700, 10, 10) a reconnect storm of 2,000 viewers ran three full
# collections (~100 ms each, every object of the process) in 2.6 s, a sixth of the storm's
# CPU. Young collections every 2,000 net allocations instead of 700, and a full one at most
# every 50 middle ones (~1M allocations), still only when a quarter more objects are
# long-lived since the last; what is loaded at start-up is frozen, never scanned again.
GC_THRESHOLDS = (2_000, 10, 50)


def tune_gc() -> None:
    """Freeze what start-up loaded and space out full collections (``GC_THRESHOLDS``)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


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
        tune_gc()
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
