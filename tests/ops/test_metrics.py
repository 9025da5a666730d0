"""A known workload against the real stack, then both ``/metrics`` answers parsed: every
counter and histogram count equals what the test did."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from service.contract.settings import Settings
from service.contract.sse_decoder import SSEDecoder, SSEEvent
from tests.jobs_api import upstream_requests, wait_for
from tests.ops.scrape import Scrape, scrape
from tests.ops.stack import Stack, running_stack

EVENTS_ROUTE = "/v1/jobs/{job_id}/events"


@dataclass
class Viewing:
    """Everything the test's viewers received, to compare with what the gateway counted."""

    streams: int = 0
    bytes: int = 0
    events: int = 0
    no_content: int = 0


async def view(
    session: aiohttp.ClientSession, url: str, seen: Viewing, headers: dict[str, str] | None = None
) -> list[SSEEvent]:
    """Read a whole stream, counting its raw bytes and events."""
    async with session.get(url, headers=headers or {}) as response:
        body = await response.read()
        if response.status == 204:
            seen.no_content += 1
            return []
        assert response.status == 200, body
    decoder = SSEDecoder()
    events = [*decoder.feed(body), *decoder.finish()]
    seen.streams += 1
    seen.bytes += len(body)
    seen.events += len(events)
    return events


async def submit(session: aiohttp.ClientSession, base: str, **body: Any) -> dict[str, Any]:
    async with session.post(f"{base}/v1/jobs", json=body) as response:
        assert response.status == 202
        job: dict[str, Any] = await response.json()
        return job


@pytest.fixture
def stack(settings: Settings, tmp_path: Path) -> Any:
    with running_stack(settings, tmp_path) as running:
        yield running


async def test_a_known_workload_is_counted_exactly_by_gateway_and_worker(
    stack: Stack, http: aiohttp.ClientSession, upstream_url: str
) -> None:
    base = stack.gateway_url
    seen = Viewing()
    plain = await submit(http, base, prompt="fizzbuzz\n#sim tokens=20 rate=200")
    retried = await submit(http, base, prompt="a server\n#sim tokens=20 rate=200 fail=500 times=1")
    failing = await submit(http, base, prompt="anything\n#sim tokens=10", model="no-such-model")
    long = await submit(http, base, prompt="a long one\n#sim tokens=4000 rate=50")

    def url(job: dict[str, Any]) -> str:
        return f"{base}{job['events_url']}"

    # Two viewers watch the long job while three watch the plain one, one each the others.
    watching = [asyncio.create_task(view(http, url(long), seen)) for _ in range(2)]
    readings = await asyncio.gather(
        *(view(http, url(plain), seen) for _ in range(3)),
        view(http, url(retried), seen),
        view(http, url(failing), seen),
    )

    async def only_the_long_jobs_viewers_left() -> bool:
        return (await scrape(http, f"{base}/metrics")).value("tokenrelay_viewers") == 2

    await wait_for(only_the_long_jobs_viewers_left, within=10)
    during = await scrape(http, f"{base}/metrics")
    assert during.value("tokenrelay_viewers_per_job_bucket", le="1.0") == 0
    assert during.value("tokenrelay_viewers_per_job_bucket", le="2.0") == 1
    assert during.value("tokenrelay_viewers_per_job_bucket", le="+Inf") == 1
    assert during.value("tokenrelay_viewers_per_job_gsum") == 2

    cancel_header = {"X-Cancel-Token": long["cancel_token"]}
    async with http.delete(f"{base}/v1/jobs/{long['id']}", headers=cancel_header) as response:
        assert response.status == 200
    for events in await asyncio.gather(*watching):
        assert events[-1].event == "cancelled"

    # Resumes of the finished plain job: by header, by query, and one at its end (204).
    ids = [event.id or "" for event in readings[0]]
    await view(http, url(plain), seen, headers={"Last-Event-ID": ids[2]})
    await view(http, f"{url(plain)}&last_event_id={ids[1]}", seen)
    await view(http, url(plain), seen, headers={"Last-Event-ID": ids[-1]})
    async with http.get(f"{base}/readyz") as response:
        assert response.status == 200

    async def worker_noticed_the_cancel() -> bool:
        now = await scrape(http, stack.worker_metrics_url)
        return now.value("tokenrelay_worker_jobs_stopped_total", reason="ended") == 1

    await wait_for(worker_noticed_the_cancel, within=10)
    gateway = await scrape(http, f"{base}/metrics")
    worker = await scrape(http, stack.worker_metrics_url)
    _assert_gateway(gateway, seen)
    await _assert_worker(worker, http, base, upstream_url, plain, retried)
    for figures in (gateway, worker):
        assert figures.value("tokenrelay_queue_lag") == 0
        assert figures.value("tokenrelay_queue_pending") == 0
        assert figures.value("tokenrelay_dead_letters") == 0
        assert (
            figures.value("tokenrelay_redis_command_duration_seconds_count", command="EVALSHA") > 0
        )


def _assert_gateway(gateway: Scrape, seen: Viewing) -> None:
    assert seen.streams == 9 and seen.no_content == 1
    assert gateway.value("tokenrelay_jobs_submitted_total") == 4
    assert gateway.value("tokenrelay_jobs_cancelled_total") == 1
    assert gateway.value("tokenrelay_resumes_total", source="header") == 2
    assert gateway.value("tokenrelay_resumes_total", source="query") == 1
    assert gateway.value("tokenrelay_stream_no_content_total") == 1
    assert gateway.value("tokenrelay_viewer_streams_ended_total") == 9
    assert gateway.value("tokenrelay_viewer_streams_ended_total", reason="terminal") == 9
    # Byte for byte and event for event what the viewers received.
    assert gateway.value("tokenrelay_event_bytes_sent_total") == seen.bytes
    assert gateway.value("tokenrelay_events_sent_total") == seen.events
    # Live batches reached caught-up viewers straight from the feed; replays went through
    # the viewers' own tasks.
    assert 0 < gateway.value("tokenrelay_event_bytes_sent_direct_total") < seen.bytes
    assert gateway.value("tokenrelay_viewers") == 0
    requests = "tokenrelay_http_requests_total"
    assert gateway.value(requests, method="POST", route="/v1/jobs", status="202") == 4
    assert gateway.value(requests, method="GET", route=EVENTS_ROUTE, status="200") == 9
    assert gateway.value(requests, method="GET", route=EVENTS_ROUTE, status="204") == 1
    assert gateway.value(requests, method="DELETE", route="/v1/jobs/{job_id}", status="200") == 1
    assert gateway.value("tokenrelay_http_request_duration_seconds_count", route="/v1/jobs") == 4
    # Every stream replayed at least the `queued` status written before its viewer came.
    assert gateway.value("tokenrelay_replay_size_bytes_count") == 9
    assert 0 < gateway.value("tokenrelay_replay_size_bytes_sum") < seen.bytes
    lag_writes = gateway.value("tokenrelay_delivery_lag_seconds_count")
    assert 0 < lag_writes <= seen.events
    assert gateway.value("tokenrelay_ready") == 1
    assert gateway.value("tokenrelay_readiness_changes_total") == 0


async def _assert_worker(
    worker: Scrape,
    http: aiohttp.ClientSession,
    base: str,
    upstream_url: str,
    plain: dict[str, Any],
    retried: dict[str, Any],
) -> None:
    assert worker.value("tokenrelay_jobs_started_total", delivery="first") == 4
    assert worker.value("tokenrelay_jobs_started_total", delivery="redelivered") == 0
    assert worker.value("tokenrelay_jobs_done_total") == 2
    assert worker.value("tokenrelay_jobs_failed_total") == 1
    assert worker.value("tokenrelay_jobs_failed_total", code="upstream_not_found") == 1
    assert worker.value("tokenrelay_worker_jobs_stopped_total") == 1
    assert worker.value("tokenrelay_upstream_retries_total") == 1
    assert worker.value("tokenrelay_upstream_retries_total", code="upstream_unavailable") == 1
    calls = "tokenrelay_upstream_request_duration_seconds_count"
    sim = "tokenrelay-sim"
    assert worker.value(calls, model=sim, outcome="ok") == 2
    assert worker.value(calls, model=sim, outcome="upstream_unavailable") == 1
    assert worker.value(calls, model=sim, outcome="cancelled") == 1
    assert worker.value(calls, model="other", outcome="upstream_not_found") == 1
    assert worker.value(calls) == len(await upstream_requests(http, upstream_url))
    # First tokens: the plain job, the retried job's second attempt, the long job.
    assert worker.value("tokenrelay_upstream_time_to_first_token_seconds_count") == 3
    assert worker.value("tokenrelay_upstream_tokens_per_second_count", model=sim) == 2
    assert worker.value("tokenrelay_upstream_inter_token_seconds_count") >= 2 * 19
    assert worker.value("tokenrelay_job_queue_wait_seconds_count") == 4
    assert worker.value("tokenrelay_worker_event_writes_total", type="done") == 2
    assert worker.value("tokenrelay_worker_event_writes_total", type="failed") == 1
    assert worker.value("tokenrelay_upstream_requests_in_flight") == 0
    assert worker.value("tokenrelay_worker_jobs_running") == 0
    for kind in ("prompt", "completion"):
        reported = 0
        for job in (plain, retried):
            async with http.get(f"{base}{job['job_url']}?token={job['viewer_token']}") as r:
                reported += (await r.json())["usage"][f"{kind}_tokens"]
        usage = worker.value("tokenrelay_upstream_usage_tokens_total", model=sim, kind=kind)
        assert usage == reported > 0
