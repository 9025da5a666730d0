"""Running a worker process until a stop signal."""

from __future__ import annotations

import asyncio

import aiohttp

from service.contract.settings import Settings
from service.contract.store.redis_client import connect, warm_up
from service.contract.store.redis_metrics import instrument_redis
from service.contract.store.scripts import Scripts
from service.contract.telemetry.log_context import log_fields
from service.contract.telemetry.log_setup import redact_secrets
from service.contract.telemetry.tracing import Tracing
from service.contract.telemetry.tracing_setup import setup_tracing
from worker.job import JobContext
from worker.metrics import WorkerMetrics, serve_metrics
from worker.runner import Worker, default_worker_id
from worker.upstream import UpstreamClient, UpstreamTimeouts


async def serve_worker(
    settings: Settings, stop: asyncio.Event, *, tracing: Tracing | None = None
) -> None:
    """Consume the queue until ``stop`` is set, then drain within the grace period.

    Without ``tracing``, traces are set up from the ``OTEL_*`` variables (off by default).
    """
    owned_tracing = tracing is None
    tracing = setup_tracing("tokenrelay-worker") if tracing is None else tracing
    if settings.upstream_api_key is not None:
        redact_secrets([settings.upstream_api_key.get_secret_value()])
    worker_id = settings.worker_id or default_worker_id()
    metrics = WorkerMetrics(settings, worker_id)
    redis = connect(settings.required_redis_url)
    await warm_up(redis, settings.required_redis_url)
    instrument_redis(redis, metrics.redis)
    metrics_server = await serve_metrics(
        metrics, redis, settings.worker_metrics_host, settings.worker_metrics_port
    )
    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
    try:
        async with aiohttp.ClientSession(connector=connector) as session:
            upstream = UpstreamClient(
                session,
                base_url=settings.upstream_url,
                api_key=settings.upstream_api_key,
                timeouts=UpstreamTimeouts.from_settings(settings),
            )
            ctx = JobContext(
                redis=redis,
                scripts=Scripts.register(redis),
                settings=settings,
                upstream=upstream,
                worker_id=worker_id,
                metrics=metrics,
                tracing=tracing,
            )
            worker = Worker(ctx)
            with log_fields(worker_id=worker_id):  # every line of this worker names it
                task = asyncio.create_task(worker.run())
            stopper = asyncio.create_task(stop.wait())
            try:
                await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
                worker.stop()
                await task
            finally:
                stopper.cancel()
    finally:
        if metrics_server is not None:
            await metrics_server.cleanup()
        await redis.aclose()
        if owned_tracing:
            tracing.shutdown()
