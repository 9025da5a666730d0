"""Running a worker process until a stop signal."""

from __future__ import annotations

import asyncio

import aiohttp

from service.redis_client import connect
from service.scripts import Scripts
from service.settings import Settings
from worker.job import JobContext
from worker.runner import Worker, default_worker_id
from worker.upstream import UpstreamClient, UpstreamTimeouts


async def serve_worker(settings: Settings, stop: asyncio.Event) -> None:
    """Consume the queue until ``stop`` is set, then drain within the grace period."""
    redis = connect(settings.required_redis_url)
    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
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
            worker_id=settings.worker_id or default_worker_id(),
        )
        worker = Worker(ctx)
        task = asyncio.create_task(worker.run())
        stopper = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
            worker.stop()
            await task
        finally:
            stopper.cancel()
            await redis.aclose()
