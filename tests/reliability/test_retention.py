"""Retention and a full Redis: finished jobs expire with a clear 404, an out-of-memory Redis
refuses submits explicitly."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from service.contract.keys import job_events_key, job_output_key, job_record_key, queue_keys
from service.contract.settings import Settings
from service.gateway.app import create_app
from tests.conftest import RunningWorker
from tests.jobs_api import submit, wait_for, wait_until_ended


async def test_a_finished_job_expires_after_its_retention_with_a_clear_404(
    settings: Settings, redis: Redis
) -> None:
    short = settings.model_copy(update={"retention_seconds": 1})
    async with TestClient(TestServer(await create_app(short, redis))) as gateway:
        worker = RunningWorker(short)
        try:
            job = await submit(gateway, "tiny\n#sim tokens=5 rate=0")
            await wait_until_ended(gateway, job["id"])
            keys = [job_record_key(job["id"]), job_events_key(job["id"]), job_output_key(job["id"])]
            ttls = [await redis.ttl(key) for key in keys]
            assert all(0 < ttl <= 1 for ttl in ttls)

            async def expired() -> bool:
                return (await gateway.get(f"/v1/jobs/{job['id']}")).status == 404

            await wait_for(expired, within=5)
            response = await gateway.get(job["events_url"])
            assert response.status == 404
            assert "expired" in (await response.json())["error"]["message"]
        finally:
            await worker.shutdown()


async def test_an_unfinished_job_is_not_given_the_short_retention(
    gateway: TestClient[Any, Any], redis: Redis
) -> None:
    job = await submit(gateway, "queued forever")
    assert await redis.ttl(job_events_key(job["id"])) > 86_400


async def test_submit_to_a_full_redis_is_refused_explicitly(
    gateway: TestClient[Any, Any], redis: Redis
) -> None:
    await redis.config_set("maxmemory", "1")
    try:
        response = await gateway.post("/v1/jobs", json={"prompt": "a"})
        assert response.status == 503
        assert (await response.json())["error"]["code"] == "redis_out_of_memory"
    finally:
        await redis.config_set("maxmemory", "0")
    assert sum([await redis.exists(queue) for queue in queue_keys()]) == 0
