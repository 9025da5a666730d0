"""``tokenrelay jobs`` against a live stack: what runs with which attempt and how many viewers,
the queue, cancel, and a dead-lettered job requeued to done."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import aiohttp
import orjson
from aiohttp.test_utils import TestClient

from service.contract.events import DONE, FAILED, RESET
from service.contract.settings import Settings
from service.contract.store.redis_client import AnyRedis
from tests.conftest import RunningWorker
from tests.jobs_api import submit, upstream_text, wait_for, wait_until_ended
from tests.processes import ROOT
from tests.sse_client import read_stream, text_of


async def jobs_cli(settings: Settings, *args: str) -> tuple[int, str, str]:
    """Run ``tokenrelay jobs ...`` as its own process (without blocking this event loop)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENRELAY_")}
    env["TOKENRELAY_REDIS_URL"] = settings.required_redis_url
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "service.cli",
        "jobs",
        *args,
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def jobs_json(settings: Settings, *args: str) -> Any:
    code, out, err = await jobs_cli(settings, "--json", *args)
    assert code == 0, err
    return orjson.loads(out)


async def test_list_shows_a_running_job_with_its_attempt_and_viewers(
    settings: Settings,
    gateway: TestClient[Any, Any],
    worker: RunningWorker,
    http: aiohttp.ClientSession,
) -> None:
    job = await submit(gateway, "a long one\n#sim tokens=3000 rate=50 fail=500 times=1")
    url = str(gateway.make_url(job["events_url"]))
    viewers = [asyncio.create_task(read_stream(http, url)) for _ in range(3)]
    row: dict[str, Any] = {}

    async def listed_running_with_three_viewers() -> bool:
        nonlocal row
        rows = await jobs_json(settings, "list")
        row = next((r for r in rows if r["id"] == job["id"]), {})
        return row.get("status") == "running" and row.get("viewers") == 3

    await wait_for(listed_running_with_three_viewers, within=20, interval=0.2)
    assert row["attempt"] == 2  # the first attempt met a 500
    assert row["worker"] and row["held_by"] == row["worker"]
    assert row["age_seconds"] >= 0 and row["output_bytes"] >= 0

    code, table, _ = await jobs_cli(settings, "list")
    assert code == 0
    header, *lines = table.splitlines()
    assert header.split()[:7] == [
        "JOB",
        "STATUS",
        "AGE_S",
        "ATTEMPT",
        "WORKER",
        "OUTPUT_B",
        "VIEWERS",
    ]
    ours = next(line.split() for line in lines if line.startswith(job["id"]))
    assert ours[1] == "running" and ours[3] == "2" and ours[6] == "3"

    shown = await jobs_json(settings, "show", job["id"])
    assert shown["status"] == "running" and shown["attempt"] == 2 and shown["viewers"] == 3
    assert shown["queue_entry"]["held_by"] == shown["worker"]
    queue = await jobs_json(settings, "queue")
    assert queue["pending"] == 1 and queue["waiting"] == 0 and queue["dead_letters"] == 0
    assert [c["name"] for c in queue["consumers"] if c["pending"]] == [shown["worker"]]

    assert await jobs_json(settings, "cancel", job["id"]) == {
        "id": job["id"],
        "status": "cancelled",
    }
    for reading in await asyncio.gather(*viewers):
        assert reading.events[-1].event == "cancelled"
    code, _, err = await jobs_cli(settings, "cancel", "no-such-job-at-all")
    assert code == 1 and "no job" in err


async def test_requeue_brings_a_dead_lettered_job_back_to_done(
    settings: Settings,
    gateway: TestClient[Any, Any],
    redis: AnyRedis,
    http: aiohttp.ClientSession,
    upstream_url: str,
) -> None:
    """A job handed back once too often is failed and dead-lettered; requeued, it runs again
    from a fresh event stream, and a viewer that saw the failure resumes into the new run."""
    poison = settings.model_copy(update={"max_deliveries": 1})
    impatient = poison.model_copy(update={"shutdown_grace_seconds": 0.1})
    job = await submit(gateway, "a parser\n#sim tokens=60 rate=40")
    url = str(gateway.make_url(job["events_url"]))
    first = RunningWorker(impatient)

    async def running() -> bool:
        record = await (await gateway.get(f"/v1/jobs/{job['id']}")).json()
        return bool(record["status"] == "running")

    await wait_for(running, within=10)
    await first.shutdown()  # hands the job back: a second delivery is one too many
    second = RunningWorker(poison)
    try:
        failed = await wait_until_ended(gateway, job["id"], within=15)
        assert failed["status"] == FAILED and failed["error"]["code"] == "worker_lost"
        dead = await jobs_json(settings, "dead")
        assert [(d["job"], d["job_status"]) for d in dead] == [(job["id"], "failed")]
        seen = await read_stream(http, url)
        assert seen.events[-1].event == FAILED

        requeued = await jobs_json(settings, "requeue", job["id"])
        assert requeued["job"] == job["id"] and requeued["note"] == "reset and queued"
        done = await wait_until_ended(gateway, job["id"], within=15)
    finally:
        await second.shutdown()
    assert done["status"] == DONE and done["attempt"] == 2
    assert done["output"] == await upstream_text(http, upstream_url, job["id"])
    assert await jobs_json(settings, "dead") == []

    fresh = await read_stream(http, url)
    assert [e.event for e in fresh.events][:2] == ["status", "status"]
    assert FAILED not in [e.event for e in fresh.events]
    assert text_of(fresh.events) == done["output"] and fresh.events[-1].event == DONE
    resumed = await read_stream(http, url, last_event_id=seen.events[-1].id)
    assert resumed.events[0].event == RESET and '"unknown_position"' in resumed.events[0].data
    assert text_of(resumed.events) == done["output"]
    code, _, err = await jobs_cli(settings, "requeue", job["id"])
    assert code == 1 and "no dead letter" in err
