"""Small client helpers the tests share: submit, wait for the end, read the simulator's log."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from service.contract.events import TERMINAL


async def submit(client: TestClient[Any, Any], prompt: str, **fields: Any) -> dict[str, Any]:
    """POST /v1/jobs and return the 202 body."""
    response = await client.post("/v1/jobs", json={"prompt": prompt, **fields})
    body: dict[str, Any] = await response.json()
    assert response.status == 202, body
    return body


async def cancel(client: TestClient[Any, Any], job: dict[str, Any]) -> aiohttp.ClientResponse:
    """DELETE the job as its submitter: with the cancel token its 202 gave."""
    return await client.delete(
        f"/v1/jobs/{job['id']}", headers={"X-Cancel-Token": job["cancel_token"]}
    )


async def wait_until_ended(
    client: TestClient[Any, Any], job_id: str, *, within: float = 30.0
) -> dict[str, Any]:
    """Poll the record until the job is terminal; return the record."""
    deadline = time.monotonic() + within
    while True:
        response = await client.get(f"/v1/jobs/{job_id}")
        record: dict[str, Any] = await response.json()
        if record.get("status") in TERMINAL:
            return record
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} did not end in {within} s: {record}")
        await asyncio.sleep(0.05)


async def wait_for(predicate: Any, *, within: float = 10.0, interval: float = 0.02) -> None:
    """Wait until ``await predicate()`` is true."""
    deadline = time.monotonic() + within
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)


async def upstream_requests(
    session: aiohttp.ClientSession, upstream_url: str, job_id: str | None = None
) -> list[dict[str, Any]]:
    """The simulator's log of completion requests (for one job, if given)."""
    base = upstream_url.removesuffix("/v1")
    async with session.get(f"{base}/_sim/requests") as response:
        log: list[dict[str, Any]] = await response.json()
    if job_id is None:
        return log
    return [r for r in log if r.get("headers", {}).get("x-tokenrelay-job") == job_id]


async def upstream_text(session: aiohttp.ClientSession, upstream_url: str, job_id: str) -> str:
    """What the upstream sent for the job's last request (the attempt that counted)."""
    requests = await upstream_requests(session, upstream_url, job_id)
    assert requests, f"the upstream never saw job {job_id}"
    text: str = requests[-1]["text"]
    return text
