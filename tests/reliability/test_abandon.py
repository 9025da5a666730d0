"""What happens when viewers leave, across gateways and a real worker: ``on_abandon: "cancel"``
cancels a job nobody has watched for its grace (reason ``abandoned``), a viewer back inside the
grace keeps it, a crashed gateway's vouch runs out; and a session's new job replaces (cancels)
the one before it, exactly one surviving however many are submitted at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from service.contract.events import CANCELLED, TOKEN
from service.contract.settings import Settings
from service.contract.store.redis_client import AnyRedis
from service.gateway.app import create_app
from tests.conftest import RunningWorker, make_settings
from tests.jobs_api import submit, upstream_requests, wait_for, wait_until_ended
from tests.processes import gateway_process
from tests.sse_client import read_stream

pytestmark = pytest.mark.slow

GRACE = 2.0
# A long job at a slow rate: it is still running when the assertions look.
LONG = "rust\n#sim tokens=3000 rate=50"


@pytest.fixture
def policy_settings(redis_url: str, upstream_url: str) -> Settings:
    # Gateways report viewers every 0.2 s, so a crashed one's vouch lasts 0.6 s.
    return make_settings(redis_url=redis_url, upstream_url=upstream_url, viewer_report_seconds=0.2)


@pytest.fixture
async def gateways(
    policy_settings: Settings, redis: AnyRedis
) -> AsyncIterator[list[TestClient[Any, Any]]]:
    async with (
        TestClient(TestServer(await create_app(policy_settings, redis))) as first,
        TestClient(TestServer(await create_app(policy_settings, redis))) as second,
    ):
        yield [first, second]


@pytest.fixture
async def policy_worker(policy_settings: Settings) -> AsyncIterator[RunningWorker]:
    running = RunningWorker(policy_settings)
    yield running
    await running.shutdown()


async def _watch_a_while(http: aiohttp.ClientSession, url: str, tokens: int = 3) -> None:
    """Connect, read until a few tokens arrived, then hang up."""
    seen = 0
    async with http.get(url) as response:
        async for line in response.content:
            seen += line.startswith(b"event: " + TOKEN.encode())
            if seen >= tokens:
                return


async def _status(client: TestClient[Any, Any], job_id: str) -> str:
    record: dict[str, Any] = await (await client.get(f"/v1/jobs/{job_id}")).json()
    return str(record["status"])


async def test_the_last_viewer_leaves_and_the_job_is_cancelled_after_the_grace_not_before(
    gateways: list[TestClient[Any, Any]],
    policy_worker: RunningWorker,
    http: aiohttp.ClientSession,
    upstream_url: str,
) -> None:
    job = await submit(gateways[0], LONG, on_abandon="cancel", abandon_grace_seconds=GRACE)
    await _watch_a_while(http, str(gateways[0].make_url(job["events_url"])))
    left = time.time()
    await asyncio.sleep(GRACE / 2)  # the grace has not passed: the job must still run
    assert await _status(gateways[1], job["id"]) == "running"
    record = await wait_until_ended(gateways[1], job["id"], within=15)
    assert record["status"] == "cancelled"
    ended = time.time()
    assert ended - left >= GRACE
    reading = await read_stream(http, str(gateways[1].make_url(job["events_url"])))
    assert reading.events[-1].event == CANCELLED
    assert orjson.loads(reading.events[-1].data) == {"reason": "abandoned"}

    async def upstream_closed() -> bool:
        calls = await upstream_requests(http, upstream_url, job["id"])
        return bool(calls) and calls[-1]["status"] == "client_disconnected"

    await wait_for(upstream_closed, within=5)


async def test_a_viewer_back_inside_the_grace_on_another_gateway_keeps_the_job_alive(
    gateways: list[TestClient[Any, Any]], policy_worker: RunningWorker, http: aiohttp.ClientSession
) -> None:
    job = await submit(
        gateways[0],
        "go\n#sim tokens=400 rate=80",
        on_abandon="cancel",
        abandon_grace_seconds=GRACE,
    )
    await _watch_a_while(http, str(gateways[0].make_url(job["events_url"])))
    await asyncio.sleep(GRACE / 2)
    # Back, on the other gateway, and watching to the end: longer than the grace in all.
    reading = await read_stream(http, str(gateways[1].make_url(job["events_url"])))
    assert reading.events[-1].event == "done"
    assert (await wait_until_ended(gateways[0], job["id"]))["status"] == "done"


async def test_a_gateway_killed_with_the_only_viewer_releases_its_presence_in_time(
    policy_settings: Settings,
    gateways: list[TestClient[Any, Any]],
    policy_worker: RunningWorker,
    http: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    process = gateway_process(policy_settings, tmp_path).start()
    try:
        async with http.post(
            f"{process.url}/v1/jobs",
            json={"prompt": LONG, "on_abandon": "cancel", "abandon_grace_seconds": GRACE},
        ) as response:
            job = await response.json()
        watching = asyncio.create_task(_watch_a_while(http, process.url + job["events_url"], 10**6))

        async def watched_there() -> bool:
            return await _status(gateways[0], job["id"]) == "running"

        await wait_for(watched_there, within=10)
        await asyncio.sleep(GRACE + 0.5)  # watched all along: longer than the grace
        assert await _status(gateways[0], job["id"]) == "running"
        process.kill()  # SIGKILL: no goodbye, its vouch must run out by itself
        killed = time.time()
        with pytest.raises((aiohttp.ClientError, ConnectionError)):
            await watching
        record = await wait_until_ended(gateways[0], job["id"], within=15)
        assert record["status"] == "cancelled"
        # The vouch (3 reports = 0.6 s) plus the grace, plus polling: bounded.
        assert time.time() - killed < 3 * 0.2 + GRACE + 3
    finally:
        process.stop()


async def test_jobs_submitted_at_once_in_one_session_leave_exactly_one_running(
    gateways: list[TestClient[Any, Any]], http: aiohttp.ClientSession
) -> None:
    # No worker: every job stays queued unless replaced, so the count is exact.
    jobs = await asyncio.gather(
        *(submit(gateways[n % 2], f"tab {n}", session="editor-tab-1") for n in range(8))
    )
    other = await submit(gateways[0], "another tab", session="editor-tab-2")
    statuses = {job["id"]: await _status(gateways[0], job["id"]) for job in jobs}
    assert sorted(statuses.values()) == ["cancelled"] * 7 + ["queued"]
    assert await _status(gateways[0], other["id"]) == "queued"
    for job_id, status in statuses.items():
        if status == "cancelled":
            reading = await read_stream(
                http, str(gateways[0].make_url(f"/v1/jobs/{job_id}/events"))
            )
            assert orjson.loads(reading.events[-1].data) == {"reason": "replaced"}
