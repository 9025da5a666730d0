"""Clients that vanish while the gateway's Redis calls are in flight never leave a pooled
connection in a bad state (the redis-py cancellation bugs behind CVE-2023-28858/28859): every
later reply still belongs to its own job."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from service.cli.embedded_redis import RedisServer
from service.contract.settings import Settings
from service.contract.store.redis_client import connect
from service.gateway.app import create_app
from tests.conftest import RunningWorker
from tests.jobs_api import upstream_text, wait_until_ended
from tests.sse_client import read_stream, text_of
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.slow


async def test_abrupt_disconnects_during_slow_redis_calls_leave_every_reply_with_its_job(
    settings: Settings,
    redis_server: RedisServer,
    worker: RunningWorker,
    http: aiohttp.ClientSession,
    upstream_url: str,
) -> None:
    proxy = await TcpProxy("127.0.0.1", redis_server.port, delay=0.003).start()
    slow_redis = connect(f"redis://127.0.0.1:{proxy.port}/0", max_connections=64)
    try:
        app = await create_app(settings, slow_redis)
        # As in production (gateway_main): a vanished client cancels its handler.
        async with TestClient(TestServer(app, handler_cancellation=True)) as gateway:
            jobs: list[dict[str, Any]] = []
            for n in range(12):
                response = await gateway.post(
                    "/v1/jobs", json={"prompt": f"job {n} in go\n#sim tokens=120 rate=150"}
                )
                jobs.append(await response.json())
            rng = random.Random(11)

            async def vanish(job: dict[str, Any]) -> None:
                url = str(gateway.make_url(job["events_url"]))
                kind = rng.choice(["events", "record", "resume"])
                if kind == "record":
                    call = http.get(str(gateway.make_url(f"/v1/jobs/{job['id']}")))
                else:
                    headers = {"Last-Event-ID": "1-0"} if kind == "resume" else {}
                    call = http.get(url, headers=headers)
                task = asyncio.ensure_future(call)
                # Mid-flight, on purpose: a hundred requests at once take tens of ms to reach the
                # gateway's Redis calls, so the cancels are spread over 100 ms.
                await asyncio.sleep(rng.random() * 0.1)
                task.cancel()
                try:
                    response = await task
                    response.close()
                except (asyncio.CancelledError, aiohttp.ClientError):
                    pass

            for _ in range(6):
                await asyncio.gather(*(vanish(rng.choice(jobs)) for _ in range(100)))
            # redis-py drops a connection whose command was cancelled mid-flight (a healthy
            # pool keeps its connections open): closed ones show cancels hit Redis calls.
            dropped = proxy.accepted - proxy.open_connections
            print("redis connections dropped by cancellation:", dropped)
            assert dropped >= 10
            for job in jobs:
                record = await wait_until_ended(gateway, job["id"], within=60)
                assert record["id"] == job["id"]
                expected = await upstream_text(http, upstream_url, job["id"])
                assert record["output"] == expected
                reading = await read_stream(http, str(gateway.make_url(job["events_url"])))
                assert text_of(reading.events) == expected
    finally:
        await slow_redis.aclose()
        await proxy.close()
