"""SUBMIT_WAIT_REPLICAS on a Redis with no replica: the submit cannot be confirmed, says so
with 503 `replication_timeout`, and the job it stored is what a retry with the same
Idempotency-Key gets. (Confirmed submits and a stalled replica: tests/cluster.)"""

from __future__ import annotations

from aiohttp.test_utils import TestClient, TestServer

from service.contract.settings import Settings
from service.contract.store.redis_client import AnyRedis
from service.gateway.app import create_app


async def test_a_submit_no_replica_confirms_is_refused_but_kept(
    settings: Settings, redis: AnyRedis
) -> None:
    waiting = settings.model_copy(update={"submit_wait_replicas": 1, "submit_wait_timeout_ms": 200})
    headers = {"Idempotency-Key": "no-replica-here"}
    async with TestClient(TestServer(await create_app(waiting, redis))) as gateway:
        refused = await gateway.post("/v1/jobs", json={"prompt": "alone"}, headers=headers)
        assert refused.status == 503
        error = (await refused.json())["error"]
        assert error["code"] == "replication_timeout"
        again = await gateway.post("/v1/jobs", json={"prompt": "alone"}, headers=headers)
        assert again.status == 503
        job_id = error["message"].split()[1]
        assert job_id in (await again.json())["error"]["message"]
        record = await gateway.get(f"/v1/jobs/{job_id}")
        assert record.status == 200 and (await record.json())["status"] == "queued"
