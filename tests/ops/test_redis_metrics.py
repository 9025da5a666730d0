"""Redis as the metrics see it: a Redis restart shows up as failed commands, a readiness flip
each way and reconnects."""

from __future__ import annotations

import aiohttp
from aiohttp.test_utils import TestClient, TestServer

from service.cli.embedded_redis import RedisServer
from service.contract.store.redis_client import connect
from service.gateway.app import create_app
from tests.conftest import make_settings
from tests.jobs_api import wait_for
from tests.ops.scrape import scrape


async def test_a_redis_restart_counts_errors_readiness_flips_and_reconnects(
    own_redis: RedisServer, upstream_url: str, http: aiohttp.ClientSession
) -> None:
    settings = make_settings(redis_url=own_redis.url, upstream_url=upstream_url)
    redis = connect(own_redis.url)
    try:
        async with TestClient(TestServer(await create_app(settings, redis))) as gateway:
            metrics_url = str(gateway.make_url("/metrics"))
            before = await scrape(http, metrics_url)
            assert before.value("tokenrelay_ready") == 1
            assert before.value("tokenrelay_readiness_changes_total") == 0

            own_redis.stop()
            assert (await gateway.get("/readyz")).status == 503
            own_redis.start()

            async def ready_again() -> bool:
                return (await gateway.get("/readyz")).status == 200

            await wait_for(ready_again, within=20, interval=0.1)
            after = await scrape(http, metrics_url)
    finally:
        await redis.aclose()
    assert after.value("tokenrelay_ready") == 1
    assert after.value("tokenrelay_readiness_changes_total", ready="false") == 1
    assert after.value("tokenrelay_readiness_changes_total", ready="true") == 1
    assert after.value("tokenrelay_redis_command_errors_total", command="PING") >= 1
    assert after.value("tokenrelay_redis_reconnects_total") >= 1
