"""What ``SUBMIT_WAIT_REPLICAS=1`` costs a submit: ``POST /v1/jobs`` latency on a local
3-primary/3-replica Redis Cluster (AOF everysec, as in the tests), without and with the
wait, measured alternately in one run (no worker: only the submit path).

    .venv/bin/python -m bench.submit_wait [--submits 400]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from bench.stats import percentile
from service.cli.embedded_redis import RedisClusterServers
from service.contract.settings import Settings
from service.contract.store.redis_client import connect, warm_up
from service.gateway.app import create_app


async def _latencies(settings: Settings, submits: int) -> list[float]:
    redis = connect(settings.required_redis_url)
    await warm_up(redis, settings.required_redis_url)
    took: list[float] = []
    try:
        app = await create_app(settings, redis)
        client: TestClient[Any, Any] = TestClient(TestServer(app))
        async with client:
            for n in range(submits):
                started = time.perf_counter()
                response = await client.post("/v1/jobs", json={"prompt": f"job {n}"})
                took.append((time.perf_counter() - started) * 1000)
                assert response.status == 202, await response.text()
    finally:
        await redis.aclose()
    return took


async def measure(submits: int) -> None:
    """Print p50/p99 submit latency without and with the wait, and their ratio."""
    with tempfile.TemporaryDirectory() as tmp:
        cluster = RedisClusterServers(data_dir=Path(tmp))
        cluster.start()
        try:
            base = Settings(  # type: ignore[call-arg]
                _env_file=None,
                redis_url=cluster.url,
                submit_rate_per_minute=0,
                worker_metrics_port=0,
            )
            waiting = base.model_copy(update={"submit_wait_replicas": 1})
            rounds: dict[str, list[float]] = {"no wait": [], "wait 1 replica": []}
            for _ in range(4):  # alternate, so drift on the machine hits both alike
                rounds["no wait"] += await _latencies(base, submits // 4)
                rounds["wait 1 replica"] += await _latencies(waiting, submits // 4)
        finally:
            cluster.stop()
    print(f"submit latency, {submits} submits each, local 3x2 cluster")
    print(f"{'':16}{'p50 ms':>8}{'p99 ms':>8}")
    p50 = {name: percentile(values, 50) or 0.0 for name, values in rounds.items()}
    for name, values in rounds.items():
        print(f"{name:16}{p50[name]:8.2f}{percentile(values, 99) or 0.0:8.2f}")
    ratio = p50["wait 1 replica"] / p50["no wait"]
    print(f"p50 ratio wait/no wait: {ratio:.2f}x")


def main() -> None:
    """Entry point of ``python -m bench.submit_wait``."""
    parser = argparse.ArgumentParser(prog="python -m bench.submit_wait", description=__doc__)
    parser.add_argument("--submits", type=int, default=400)
    args = parser.parse_args()
    asyncio.run(measure(args.submits))


if __name__ == "__main__":
    main()
