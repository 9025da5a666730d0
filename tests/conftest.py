"""Fixtures: a real redis-server, the real simulated upstream, the gateway and a worker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from service.cli.embedded_redis import RedisClusterServers, RedisServer
from service.contract.settings import Settings
from service.contract.store.redis_client import AnyRedis, connect
from service.gateway.app import create_app
from simulator.cli import start_simulator
from simulator.config import SimConfig
from worker.main import serve_worker


def make_settings(**overrides: Any) -> Settings:
    """Settings for tests: short timeouts so faults resolve in a second or two."""
    values: dict[str, Any] = {
        "lease_seconds": 2.0,
        "token_flush_ms": 5.0,
        "cancel_poll_seconds": 0.1,
        "retry_base_seconds": 0.05,
        "retry_max_seconds": 0.5,
        "ping_seconds": 1.0,
        "shutdown_grace_seconds": 2.0,
        "upstream_idle_timeout": 1.0,
        "upstream_first_token_timeout": 3.0,
        "upstream_total_timeout": 30.0,
        "sse_retry_ms": 200,
        "submit_rate_per_minute": 0,
        "stream_rate_per_minute": 0,
        "max_streams_per_client": 0,
        "worker_metrics_port": 0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(data_dir=tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own, to stop and restart."""
    server = RedisServer(data_dir=tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServers]:
    cluster = RedisClusterServers(data_dir=tmp_path_factory.mktemp("cluster"))
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The Redis the test's processes use; the contract suite also runs on a cluster."""
    return redis_server.url


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[AnyRedis]:
    client = connect(redis_url)
    await client.flushall()
    yield client
    await client.aclose()


@pytest.fixture
async def upstream_url() -> AsyncIterator[str]:
    config = SimConfig(tokens_per_second=300, default_tokens=60, models=["tokenrelay-sim"])
    runner, url = await start_simulator(config)
    yield url
    await runner.cleanup()


@pytest.fixture
def settings(redis_url: str, upstream_url: str) -> Settings:
    return make_settings(redis_url=redis_url, upstream_url=upstream_url)


@pytest.fixture
async def gateway(settings: Settings, redis: AnyRedis) -> AsyncIterator[TestClient[Any, Any]]:
    app = await create_app(settings, redis)
    client: TestClient[Any, Any] = TestClient(TestServer(app, handler_cancellation=True))
    await client.start_server()
    yield client
    await client.close()


class RunningWorker:
    """A worker running in this event loop, stoppable like a process on SIGTERM."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(serve_worker(settings, self.stop))

    async def shutdown(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, timeout=15)


@pytest.fixture
async def worker(settings: Settings, redis: AnyRedis) -> AsyncIterator[RunningWorker]:
    running = RunningWorker(settings)
    yield running
    await running.shutdown()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        yield session


@pytest.fixture
def output_dir() -> Path:
    path = Path(__file__).resolve().parent.parent / "test-output"
    path.mkdir(exist_ok=True)
    return path
