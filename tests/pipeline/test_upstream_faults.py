"""Every failure switch of the upstream: retried with `reset` where text was sent, `failed`
after the last attempt, and viewers always end with exactly the attempt that counted."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from service.contract.events import DONE, FAILED, RESET
from service.contract.keys import job_record_key
from service.contract.store.redis_client import AnyRedis
from tests.conftest import RunningWorker
from tests.jobs_api import submit, upstream_requests, upstream_text, wait_until_ended
from tests.sse_client import read_stream, text_of


@pytest.mark.parametrize(
    "directive",
    [
        "fail=429 retry_after=0.2 times=2",
        "fail=500 times=1",
        "fail=cut after=8 times=1",
        "fail=stall after=5 times=1",
    ],
    ids=["429", "500", "cut", "stall"],
)
async def test_transient_upstream_failure_is_retried_and_viewers_stay_exact(
    gateway: TestClient[Any, Any],
    worker: RunningWorker,
    http: aiohttp.ClientSession,
    upstream_url: str,
    directive: str,
) -> None:
    job = await submit(gateway, f"python cli\n#sim tokens=30 rate=200 {directive}")
    reading = await read_stream(http, str(gateway.make_url(job["events_url"])))
    assert reading.events[-1].event == DONE
    requests = await upstream_requests(http, upstream_url, job["id"])
    assert len(requests) >= 2
    assert text_of(reading.events) == await upstream_text(http, upstream_url, job["id"])
    record = await wait_until_ended(gateway, job["id"])
    assert record["status"] == "done"
    assert record["attempt"] == len(requests)
    assert record["output"] == requests[-1]["text"]


async def test_cut_after_tokens_sends_reset_with_the_new_attempt(
    gateway: TestClient[Any, Any], worker: RunningWorker, http: aiohttp.ClientSession
) -> None:
    # Raw output: a code-only job holds its first lines back as a possible preamble
    # (worker/code_extractor.py), so 10 tokens in, no text may have been sent yet.
    job = await submit(
        gateway, "go\n#sim tokens=30 rate=300 fail=cut after=10 times=1", output="raw"
    )
    reading = await read_stream(http, str(gateway.make_url(job["events_url"])))
    resets = [event for event in reading.events if event.event == RESET]
    assert len(resets) == 1
    assert '"attempt":2' in resets[0].data
    assert "stream_cut" in resets[0].data


async def test_a_failure_before_any_token_retries_without_reset(
    gateway: TestClient[Any, Any], worker: RunningWorker, http: aiohttp.ClientSession
) -> None:
    job = await submit(gateway, "ruby\n#sim tokens=10 rate=0 fail=500 times=1")
    reading = await read_stream(http, str(gateway.make_url(job["events_url"])))
    assert [e.event for e in reading.events if e.event == RESET] == []
    assert reading.events[-1].event == DONE


async def test_persistent_failure_ends_in_failed_after_the_last_attempt(
    gateway: TestClient[Any, Any],
    worker: RunningWorker,
    http: aiohttp.ClientSession,
    upstream_url: str,
) -> None:
    job = await submit(gateway, "php\n#sim tokens=10 fail=500")
    reading = await read_stream(http, str(gateway.make_url(job["events_url"])))
    assert reading.events[-1].event == FAILED
    assert '"code":"upstream_unavailable"' in reading.events[-1].data
    record = await wait_until_ended(gateway, job["id"])
    assert record["status"] == "failed"
    assert record["error"]["code"] == "upstream_unavailable"
    assert len(await upstream_requests(http, upstream_url, job["id"])) == 4  # max_attempts


async def test_non_retryable_upstream_error_fails_at_once(
    gateway: TestClient[Any, Any],
    worker: RunningWorker,
    http: aiohttp.ClientSession,
    upstream_url: str,
) -> None:
    """A 404 model from the provider cannot get better by retrying."""
    job = await submit(gateway, "swift\n#sim tokens=10", model="no-such-model")
    reading = await read_stream(http, str(gateway.make_url(job["events_url"])))
    assert reading.events[-1].event == FAILED
    record = await wait_until_ended(gateway, job["id"])
    assert record["error"]["code"] == "upstream_not_found"
    assert len(await upstream_requests(http, upstream_url, job["id"])) == 1


async def test_time_to_first_token_is_the_current_attempts_and_queue_wait_is_reported_apart(
    gateway: TestClient[Any, Any], worker: RunningWorker, redis: AnyRedis
) -> None:
    # The first upstream call answers 429: the job's first token comes after a backoff, but
    # TTFT is measured from the retried attempt's own start, and the queue wait apart.
    job = await submit(gateway, "go\n#sim tokens=5 rate=200 fail=429 retry_after=0.3 times=1")
    record = await wait_until_ended(gateway, job["id"])
    assert record["status"] == "done"
    assert record["attempt"] == 2
    raw = await redis.hgetall(job_record_key(job["id"]))
    ms = {
        name: int(raw[name.encode()])
        for name in ("created_at", "started_at", "attempt_started_at", "first_token_at")
    }
    assert ms["attempt_started_at"] > ms["started_at"]  # attempt 2 began after the backoff
    assert record["queue_wait_ms"] == ms["started_at"] - ms["created_at"] >= 0
    assert record["time_to_first_token_ms"] == ms["first_token_at"] - ms["attempt_started_at"]
    assert record["time_to_first_token_ms"] < ms["first_token_at"] - ms["started_at"]
