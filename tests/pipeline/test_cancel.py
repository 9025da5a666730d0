"""Cancel: viewers get `cancelled` at once; the worker closes the upstream call."""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from service.contract.events import CANCELLED, TOKEN
from tests.conftest import RunningWorker
from tests.jobs_api import cancel, submit, upstream_requests, wait_for, wait_until_ended
from tests.sse_client import read_stream


async def test_cancel_mid_stream_ends_viewers_and_the_upstream_call(
    gateway: TestClient[Any, Any],
    worker: RunningWorker,
    http: aiohttp.ClientSession,
    upstream_url: str,
) -> None:
    job = await submit(gateway, "long job\n#sim tokens=2000 rate=50")
    url = str(gateway.make_url(job["events_url"]))
    first = await read_stream(http, url, max_events=4)
    assert any(event.event == TOKEN for event in first.events)
    response = await cancel(gateway, job)
    assert response.status == 200
    assert (await response.json())["status"] == "cancelled"
    rest = await read_stream(http, url, last_event_id=first.events[-1].id)
    assert rest.events[-1].event == CANCELLED
    record = await wait_until_ended(gateway, job["id"])
    assert record["status"] == "cancelled"

    async def upstream_call_ended() -> bool:
        requests = await upstream_requests(http, upstream_url, job["id"])
        return bool(requests[-1]["status"] == "client_disconnected")

    await wait_for(upstream_call_ended, within=3.0)


async def test_cancel_of_a_queued_job_ends_it_before_any_worker_runs_it(
    gateway: TestClient[Any, Any], http: aiohttp.ClientSession
) -> None:
    job = await submit(gateway, "never runs")
    response = await cancel(gateway, job)
    assert response.status == 200
    reading = await read_stream(http, str(gateway.make_url(job["events_url"])))
    assert [event.event for event in reading.events] == ["status", CANCELLED]


async def test_cancel_is_idempotent_and_a_finished_job_cannot_be_cancelled(
    gateway: TestClient[Any, Any], worker: RunningWorker
) -> None:
    job = await submit(gateway, "x")
    assert (await cancel(gateway, job)).status == 200
    assert (await cancel(gateway, job)).status == 200
    done = await submit(gateway, "y\n#sim tokens=3 rate=0")
    await wait_until_ended(gateway, done["id"])
    response = await cancel(gateway, done)
    assert response.status == 409
    assert (await response.json())["error"]["code"] == "job_finished"
    missing = await gateway.delete("/v1/jobs/AAAAAAAAAAAAAAAAAAAAAA")
    assert missing.status == 404
