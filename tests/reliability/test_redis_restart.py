"""Redis restarts under a running job: gateway and worker reconnect, readiness flips, viewers
resume, the job finishes, nothing accepted is lost."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from service.cli.embedded_redis import RedisServer
from service.contract.events import DONE, TOKEN
from service.contract.store.redis_client import AnyRedis, connect
from service.gateway.app import create_app
from tests.conftest import RunningWorker, make_settings
from tests.jobs_api import submit, upstream_text, wait_for, wait_until_ended
from tests.sse_client import ResumingViewer, read_stream

pytestmark = pytest.mark.slow


async def test_redis_restart_mid_job_loses_nothing(
    own_redis: RedisServer, upstream_url: str, http: aiohttp.ClientSession
) -> None:
    settings = make_settings(redis_url=own_redis.url, upstream_url=upstream_url)
    redis = connect(own_redis.url)
    try:
        async with TestClient(TestServer(await create_app(settings, redis))) as gateway:
            worker = RunningWorker(settings)
            try:
                response = await gateway.post(
                    "/v1/jobs", json={"prompt": "elixir\n#sim tokens=300 rate=60 unicode=1"}
                )
                job = await response.json()
                url = str(gateway.make_url(job["events_url"]))
                viewer = ResumingViewer(http, url)
                await viewer.read(max_events=5)
                assert any(event.event == TOKEN for event in viewer.events)

                own_redis.stop()
                ready = await gateway.get("/readyz")
                assert ready.status == 503
                during = await gateway.get(f"/v1/jobs/{job['id']}")
                assert during.status == 503
                assert (await during.json())["error"]["code"] == "redis_unavailable"
                own_redis.start()

                async def ready_again() -> bool:
                    return (await gateway.get("/readyz")).status == 200

                await wait_for(ready_again, within=10)
                while not viewer.finished:
                    await viewer.read()
                assert viewer.events[-1].event == DONE
                assert viewer.text == await upstream_text(http, upstream_url, job["id"])
                again = await read_stream(http, url)
                assert again.events[-1].event == DONE
            finally:
                await worker.shutdown()
    finally:
        await redis.aclose()


async def test_worker_recreates_a_queue_redis_lost(
    gateway: TestClient[Any, Any], redis: AnyRedis, worker: RunningWorker
) -> None:
    first = await submit(gateway, "before")
    assert (await wait_until_ended(gateway, first["id"]))["status"] == "done"
    # Redis came back empty (no persistence, or the keys were deleted): the consumer group
    # is gone with the queue, and a worker that kept reading it would get NOGROUP forever.
    await redis.flushall()
    after = await submit(gateway, "after")
    assert (await wait_until_ended(gateway, after["id"], within=15))["status"] == "done"
