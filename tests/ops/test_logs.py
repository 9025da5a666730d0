"""Logs of a real gateway and worker: one line per request and per job state change, with the
job, attempt, worker and trace ids; and not one secret, whatever the workload did."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from service.contract.settings import Settings
from service.contract.sse_decoder import SSEEvent
from simulator.cli import start_simulator
from simulator.config import SimConfig
from tests.conftest import make_settings
from tests.jobs_api import wait_for
from tests.ops.stack import running_stack
from tests.sse_client import read_stream

UPSTREAM_KEY = "sk-upstream-5ecret-of-the-provider"
API_KEY = "key-alpha-5ecret-1111"
OTHER_API_KEY = "key-beta-5ecret-2222"
WRONG_KEY = "key-wrong-5ecret-3333"
SIGNING_SECRET = "signing-5ecret-4444-viewer-tokens"
TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
CALLER_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_TRACEPARENT = f"00-{CALLER_TRACE_ID}-00f067aa0ba902b7-01"


@pytest.fixture
async def keyed_upstream() -> AsyncIterator[str]:
    """A simulator that checks the upstream key, so the worker really sends it."""
    config = SimConfig(
        tokens_per_second=300, default_tokens=30, models=["tokenrelay-sim"], api_key=UPSTREAM_KEY
    )
    runner, url = await start_simulator(config)
    yield url
    await runner.cleanup()


@pytest.fixture
def secret_settings(redis_url: str, keyed_upstream: str) -> Settings:
    return make_settings(
        redis_url=redis_url,
        upstream_url=keyed_upstream,
        upstream_api_key=UPSTREAM_KEY,
        api_keys=[API_KEY],
        admin_api_keys=[OTHER_API_KEY],  # an operator cancels the job below
        viewer_token_secret=SIGNING_SECRET,
        log_level="DEBUG",
    )


def _lines(text: str) -> list[dict[str, Any]]:
    lines = []
    for raw in text.splitlines():
        if raw.startswith("{"):
            lines.append(orjson.loads(raw))
    return lines


async def test_a_workload_logs_context_and_never_a_secret(
    secret_settings: Settings, http: aiohttp.ClientSession, tmp_path: Path, redis: Any
) -> None:
    auth = {"Authorization": f"Bearer {API_KEY}"}
    tokens: list[str] = []
    with running_stack(secret_settings, tmp_path) as stack:
        base = stack.gateway_url

        async def submit(prompt: str, **headers: str) -> dict[str, Any]:
            sent = {**auth, **headers}
            async with http.post(f"{base}/v1/jobs", json={"prompt": prompt}, headers=sent) as r:
                assert r.status == 202
                job: dict[str, Any] = await r.json()
            tokens.append(job["viewer_token"])
            return job

        plain = await submit("python\n#sim tokens=20 rate=300")
        retried = await submit("go\n#sim tokens=20 rate=300 fail=500 times=1")
        long = await submit("rust\n#sim tokens=3000 rate=50", traceparent=CALLER_TRACEPARENT)
        for job in (plain, retried):
            reading = await read_stream(http, f"{base}{job['events_url']}")
            assert reading.events[-1].event == "done"
            resumed = await read_stream(
                http,
                f"{base}{job['events_url']}",
                last_event_id=reading.events[1].id,
                via_query=True,
            )
            assert resumed.events[-1].event == "done"
            async with http.get(f"{base}{job['job_url']}?token={job['viewer_token']}") as r:
                assert r.status == 200
        forged = tokens[0][:-3] + ("AAA" if not tokens[0].endswith("AAA") else "BBB")
        async with http.get(f"{base}{plain['job_url']}?token={forged}") as r:
            assert r.status == 403
        wrong = {"Authorization": f"Bearer {WRONG_KEY}"}
        async with http.post(f"{base}/v1/jobs", json={"prompt": "x"}, headers=wrong) as r:
            assert r.status == 401
        seen: list[SSEEvent] = []
        watching = asyncio.create_task(read_stream(http, f"{base}{long['events_url']}", sink=seen))

        async def watched_running() -> bool:
            # The worker is generating the long job and the viewer reads it as it comes.
            return any(event.event == "token" for event in seen)

        await wait_for(watched_running, within=10)
        cancel = {"Authorization": f"Bearer {OTHER_API_KEY}"}
        async with http.delete(f"{base}/v1/jobs/{long['id']}", headers=cancel) as r:
            assert r.status == 200
        assert (await watching).events[-1].event == "cancelled"

        async def worker_stopped_it() -> bool:
            return '"job stopped"' in stack.worker.log_text()

        await wait_for(worker_stopped_it, within=10)
    logs = stack.logs()

    for process, text in logs.items():
        for secret in (
            UPSTREAM_KEY,
            API_KEY,
            OTHER_API_KEY,
            WRONG_KEY,
            SIGNING_SECRET,
            *tokens,
            forged,
        ):
            assert secret not in text, f"a secret is in the {process} log"
        assert "token=" not in text or "token=[redacted]" in text

    gateway, worker = _lines(logs["gateway"]), _lines(logs["worker"])
    _assert_request_lines(gateway, plain["id"])
    submitted = {line["job_id"]: line for line in gateway if line["msg"] == "job submitted"}
    assert set(submitted) == {plain["id"], retried["id"], long["id"]}
    for job_id, line in submitted.items():
        assert line["attempt"] == 0 and line["status"] == "queued"
        _assert_job_lines(worker, job_id, line["trace_id"])
    # A caller's traceparent is passed on: its trace id names the job in every process.
    assert submitted[long["id"]]["trace_id"] == CALLER_TRACE_ID
    cancelled = [line for line in gateway if line["msg"] == "job cancelled"]
    assert [line["job_id"] for line in cancelled] == [long["id"]]
    assert cancelled[0]["attempt"] == 1 and cancelled[0]["worker_id"] == "w1"
    retry = [line for line in worker if line["msg"] == "attempt failed; retrying"]
    assert [(line["job_id"], line["attempt"], line["code"]) for line in retry] == [
        (retried["id"], 1, "upstream_unavailable")
    ]


def _assert_request_lines(gateway: list[dict[str, Any]], job_id: str) -> None:
    requests = [line for line in gateway if line["msg"] == "request"]
    submits = [line for line in requests if line["route"] == "/v1/jobs"]
    assert [line["status"] for line in submits] == [202, 202, 202, 401]
    streams = [
        line
        for line in requests
        if line["route"] == "/v1/jobs/{job_id}/events" and line.get("job_id") == job_id
    ]
    assert [line["status"] for line in streams] == [200, 200]
    for line in requests:
        assert TRACE_ID.match(line["trace_id"]), line
        assert line["method"] in ("GET", "POST", "DELETE")
        assert isinstance(line["duration_ms"], float | int)
        assert "?" not in line["route"]


def _assert_job_lines(worker: list[dict[str, Any]], job_id: str, trace_id: str) -> None:
    """The worker's state changes of a job: each names the job, attempt, worker and the trace
    the gateway started when the job was submitted."""
    changes = [
        line
        for line in worker
        if line.get("job_id") == job_id
        and line["msg"] in ("attempt started", "job done", "job failed", "job stopped")
    ]
    assert changes, f"no state change logged for {job_id}"
    assert changes[0]["msg"] == "attempt started"
    for line in changes:
        assert line["worker_id"] == "w1"
        assert line["attempt"] >= 1
        assert line["trace_id"] == trace_id
