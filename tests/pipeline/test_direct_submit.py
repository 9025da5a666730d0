"""Submitting straight into Redis is a first-class path: the documented queue entry and the
Python function both run a job that viewers watch exactly, and the function answers with the
same receipt as ``POST /v1/jobs`` (viewer token included, so the page can open the job)."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson
from aiohttp.test_utils import TestClient

from service.contract.events import DONE
from service.contract.jobs import parse_job_request
from service.contract.keys import dead_letter_key, queue_key
from service.contract.settings import Settings
from service.contract.store.redis_client import AnyRedis
from service.contract.store.submit import submit_direct
from service.gateway.state import STATE
from tests.conftest import RunningWorker
from tests.jobs_api import submit, upstream_text, wait_for, wait_until_ended
from tests.sse_client import read_stream, text_of


async def test_the_python_function_answers_the_http_receipt_and_the_job_is_watched_exactly(
    gateway: TestClient[Any, Any],
    worker: RunningWorker,
    redis: AnyRedis,
    settings: Settings,
    http: aiohttp.ClientSession,
    upstream_url: str,
) -> None:
    request = parse_job_request({"prompt": "rust lru\n#sim tokens=40 rate=400"}, settings)
    receipt = await submit_direct(redis, settings, request)
    over_http = await submit(gateway, "rust lru\n#sim tokens=5 rate=0")
    assert receipt.to_api().keys() == over_http.keys()
    assert receipt.status == "queued"
    # The gateway accepts the token the function issued: the same signing secret.
    gateway.app[STATE].tokens.check(receipt.id, receipt.viewer_token)

    reading = await read_stream(http, str(gateway.make_url(receipt.events_url)))
    assert reading.events[-1].event == DONE
    record = await wait_until_ended(gateway, receipt.id)
    assert text_of(reading.events) == record["output"]
    assert record["output"] == await upstream_text(http, upstream_url, receipt.id)


async def test_a_queue_entry_written_by_any_redis_client_runs_under_its_job_id(
    gateway: TestClient[Any, Any],
    worker: RunningWorker,
    redis: AnyRedis,
    http: aiohttp.ClientSession,
    upstream_url: str,
) -> None:
    job_id = "backend-job-0001"
    body = {"prompt": "go queue\n#sim tokens=30 rate=300", "language": "go"}
    await redis.xadd(queue_key(3), {"request": orjson.dumps(body), "job": job_id})

    async def exists() -> bool:
        return (await gateway.get(f"/v1/jobs/{job_id}")).status == 200

    await wait_for(exists)
    reading = await read_stream(http, str(gateway.make_url(f"/v1/jobs/{job_id}/events")))
    assert reading.events[-1].event == DONE
    record = await wait_until_ended(gateway, job_id)
    assert record["language"] == "go"
    assert text_of(reading.events) == record["output"]
    assert record["output"] == await upstream_text(http, upstream_url, job_id)


async def test_an_invalid_queue_entry_is_dead_lettered_with_the_reason(
    worker: RunningWorker, redis: AnyRedis
) -> None:
    await redis.xadd(queue_key(0), {"request": b'{"prompt": ""}', "job": "backend-bad-0001"})

    async def dead_lettered() -> bool:
        return bool(await redis.xlen(dead_letter_key()))

    await wait_for(dead_lettered)
    [(_, fields)] = await redis.xrange(dead_letter_key()) or []
    assert fields is not None
    assert fields[b"job"] == b"backend-bad-0001"
    assert "prompt" in str(fields[b"reason"])
