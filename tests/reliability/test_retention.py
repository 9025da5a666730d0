"""Retention and a full Redis: finished jobs expire with a clear 410 (a job that never existed
stays 404), an out-of-memory Redis refuses submits explicitly."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from service.contract.keys import (
    job_events_key,
    job_output_key,
    job_record_key,
    job_tombstone_key,
    queue_keys,
)
from service.contract.settings import Settings
from service.gateway.app import create_app
from tests.conftest import RunningWorker
from tests.jobs_api import submit, wait_for, wait_until_ended


async def test_an_expired_job_answers_410_expired_and_a_never_known_one_404(
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
            assert await redis.ttl(job_tombstone_key(job["id"])) > 86_400

            async def expired() -> bool:
                return (await gateway.get(f"/v1/jobs/{job['id']}")).status == 410

            await wait_for(expired, within=5)
            for response in (
                await gateway.get(f"/v1/jobs/{job['id']}"),
                await gateway.get(job["events_url"]),  # a share link, token and all
                await gateway.get(job["events_url"], headers={"Last-Event-ID": "1-0"}),
                await gateway.delete(f"/v1/jobs/{job['id']}"),
            ):
                assert response.status == 410
                error = (await response.json())["error"]
                assert error["code"] == "expired"
                assert "RETENTION_SECONDS" in error["message"]
            never = job["id"][:-4] + ("AAAA" if not job["id"].endswith("AAAA") else "BBBB")
            for response in (
                await gateway.get(f"/v1/jobs/{never}"),
                await gateway.get(f"/v1/jobs/{never}/events"),
            ):
                assert response.status == 404
                assert (await response.json())["error"]["code"] == "job_not_found"
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
