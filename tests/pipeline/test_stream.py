"""The event stream: a job's events reach every viewer exactly, live and on replay."""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from service.contract.events import DONE, STATUS, TOKEN
from tests.conftest import RunningWorker
from tests.jobs_api import submit, upstream_text, wait_until_ended
from tests.sse_client import read_stream, text_of


async def test_viewer_gets_exactly_the_upstream_text(
    gateway: TestClient[Any, Any],
    worker: RunningWorker,
    http: aiohttp.ClientSession,
    upstream_url: str,
) -> None:
    job = await submit(gateway, "write a python quicksort\n#sim tokens=80 unicode=1")
    reading = await read_stream(http, str(gateway.make_url(job["events_url"])))
    assert reading.status == 200
    assert reading.retry == 200
    kinds = [event.event for event in reading.events]
    assert kinds[0] == STATUS and kinds[-1] == DONE
    assert TOKEN in kinds
    expected = await upstream_text(http, upstream_url, job["id"])
    assert text_of(reading.events) == expected
    record = await wait_until_ended(gateway, job["id"])
    assert record["output"] == expected
    assert record["status"] == "done"
    assert record["finish_reason"] == "stop"
    assert record["usage"]["completion_tokens"] > 0


async def test_every_event_carries_its_stream_entry_id(
    gateway: TestClient[Any, Any], worker: RunningWorker, http: aiohttp.ClientSession
) -> None:
    job = await submit(gateway, "go http server\n#sim tokens=30")
    reading = await read_stream(http, str(gateway.make_url(job["events_url"])))
    ids = [event.id for event in reading.events]
    assert all(i is not None and "-" in i for i in ids)
    assert len(set(ids)) == len(ids)
    raw = await worker_stream_ids(gateway, job["id"])
    assert set(ids) <= set(raw)


async def worker_stream_ids(gateway: TestClient[Any, Any], job_id: str) -> list[str]:
    from service.contract.keys import job_events_key
    from service.gateway.state import STATE

    redis = gateway.app[STATE].redis
    return [entry_id.decode() for entry_id, _ in await redis.xrange(job_events_key(job_id))]
