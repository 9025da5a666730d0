"""Scale-out on a real local Redis Cluster: jobs spread over every primary, several gateways
and workers share the work, and a primary killed mid-stream loses no viewer's text."""

from __future__ import annotations

import asyncio
import random
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from service.cli.embedded_redis import RedisClusterServers
from service.contract.events import DONE, FAILED, TERMINAL
from service.contract.keys import job_events_key, queue_keys
from service.contract.settings import Settings
from service.contract.store.redis_client import AnyRedis
from service.gateway.app import create_app
from tests.conftest import RunningWorker
from tests.jobs_api import submit, upstream_requests, upstream_text, wait_until_ended
from tests.processes import gateway_process, worker_process
from tests.sse_client import ResumingViewer

pytestmark = pytest.mark.slow


async def _node_of(redis: AnyRedis, key: str) -> str:
    node = redis.get_node_from_key(key)  # type: ignore[union-attr]
    assert node is not None
    return f"{node.host}:{node.port}"


async def test_jobs_and_queue_partitions_spread_over_every_primary(
    gateway: TestClient[Any, Any], redis: AnyRedis, redis_cluster: RedisClusterServers
) -> None:
    jobs = [await submit(gateway, f"job {n}") for n in range(40)]
    job_nodes = {await _node_of(redis, job_events_key(job["id"])) for job in jobs}
    queue_nodes = {await _node_of(redis, queue) for queue in queue_keys()}
    primaries = {f"127.0.0.1:{port}" for port in redis_cluster.primary_ports()}
    assert job_nodes == primaries
    assert queue_nodes == primaries


async def test_two_gateways_and_two_workers_share_jobs_with_identical_ids(
    settings: Settings, http: aiohttp.ClientSession, upstream_url: str, tmp_path: Path
) -> None:
    gateways = [gateway_process(settings, tmp_path).start() for _ in range(2)]
    # Four jobs at a time each, so eight live jobs need both workers.
    narrow = settings.model_copy(update={"worker_concurrency": 4})
    workers = [worker_process(narrow, tmp_path, f"w{n}").start() for n in range(2)]
    rng = random.Random(5)
    try:
        jobs = []
        for n in range(8):
            async with http.post(
                f"{gateways[n % 2].url}/v1/jobs",
                json={"prompt": f"job {n}\n#sim tokens=80 rate=200 unicode=1"},
            ) as response:
                jobs.append(await response.json())

        async def watch(job: dict[str, Any]) -> ResumingViewer:
            viewer = ResumingViewer(http, gateways[0].url + job["events_url"])
            while not viewer.finished:
                viewer.url = gateways[viewer.connections % 2].url + job["events_url"]
                await viewer.read(max_events=rng.randint(1, 10))
            return viewer

        viewers = await asyncio.gather(*(watch(job) for job in jobs for _ in range(3)))
        for index, viewer in enumerate(viewers):
            job = jobs[index // 3]
            expected = await upstream_text(http, upstream_url, job["id"])
            assert viewer.text == expected
        for job in jobs:
            assert len(await upstream_requests(http, upstream_url, job["id"])) == 1
        logs = [w.log_text() for w in workers]
        assert all('"job done"' in log for log in logs), "both workers ran jobs"
    finally:
        for process in gateways + workers:
            process.kill()


@pytest.mark.timeout(200)
async def test_primary_killed_mid_stream_every_viewer_ends_exact_or_explicitly_failed(
    gateway: TestClient[Any, Any],
    redis: AnyRedis,
    redis_cluster: RedisClusterServers,
    settings: Settings,
    http: aiohttp.ClientSession,
    upstream_url: str,
) -> None:
    worker = RunningWorker(settings)
    try:
        jobs = [
            await submit(gateway, f"failover {n}\n#sim tokens=300 rate=60 unicode=1")
            for n in range(6)
        ]
        viewers = [ResumingViewer(http, str(gateway.make_url(job["events_url"]))) for job in jobs]
        await asyncio.gather(*(viewer.read(max_events=4) for viewer in viewers))
        victim = await _node_of(redis, job_events_key(jobs[0]["id"]))
        redis_cluster.node(int(victim.rsplit(":", 1)[1])).stop(kill=True)

        async def finish(viewer: ResumingViewer) -> None:
            while not viewer.finished:
                if await viewer.read() != 200:
                    await asyncio.sleep(0.2)

        await asyncio.wait_for(asyncio.gather(*(finish(v) for v in viewers)), timeout=120)
        exact = failed = 0
        for job, viewer in zip(jobs, viewers, strict=True):
            record = await wait_until_ended(gateway, job["id"], within=30)
            assert record["status"] in ("done", "failed")
            assert viewer.events[-1].event in TERMINAL
            if viewer.events[-1].event == DONE:
                assert viewer.text == record["output"]
                assert viewer.text == await upstream_text(http, upstream_url, job["id"])
                exact += 1
            else:
                assert viewer.events[-1].event == FAILED
                failed += 1
        assert exact + failed == len(jobs)
        print(f"failover: {len(jobs)} jobs, {exact} exact, {failed} failed explicitly, 0 lost")
    finally:
        await worker.shutdown()
        redis_cluster.restore()


async def test_submit_waits_for_a_replica_and_says_so_when_none_confirms(
    settings: Settings, redis: AnyRedis, redis_cluster: RedisClusterServers
) -> None:
    redis_cluster.wait_replicas_synced()  # a node an earlier test restarted may still sync
    waiting = settings.model_copy(
        update={"submit_wait_replicas": 1, "submit_wait_timeout_ms": 2000}
    )
    async with TestClient(TestServer(await create_app(waiting, redis))) as gateway:
        accepted = await gateway.post("/v1/jobs", json={"prompt": "kept twice"})
        assert accepted.status == 202
        # Replicas that cannot take the writes: the submit says the job is not safe yet.
        replicas = [redis_cluster.replica_of(port) for port in redis_cluster.primary_ports()]
        for node in replicas:
            assert node.process is not None
            node.process.send_signal(signal.SIGSTOP)
        try:
            headers = {"Idempotency-Key": "replicated-or-not"}
            refused = await gateway.post("/v1/jobs", json={"prompt": "at risk"}, headers=headers)
            assert refused.status == 503
            error = (await refused.json())["error"]
            assert error["code"] == "replication_timeout"
        finally:
            for node in replicas:
                assert node.process is not None
                node.process.send_signal(signal.SIGCONT)
        # The job was stored: the retry with the same key gets it, now replicated.
        retried = await gateway.post("/v1/jobs", json={"prompt": "at risk"}, headers=headers)
        assert retried.status == 202
        assert (await retried.json())["id"] in error["message"]
