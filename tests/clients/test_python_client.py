"""The Python client: ``watch()`` resumes on its own across a gateway killed mid-stream, and the
blocking client does what the asyncio one does."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from client import (
    APIError,
    Backoff,
    DoneEvent,
    JobEvent,
    SyncTokenRelayClient,
    TokenEvent,
    TokenRelayClient,
    Transcript,
)
from service.contract.events import parse_stream_id
from service.contract.settings import Settings
from tests.conftest import RunningWorker
from tests.jobs_api import upstream_text
from tests.processes import gateway_process

FAST = Backoff(initial=0.05, maximum=0.3, give_up_after=20)


async def test_watch_survives_a_gateway_killed_and_restarted_mid_stream(
    settings: Settings,
    worker: RunningWorker,
    http: aiohttp.ClientSession,
    upstream_url: str,
    tmp_path: Path,
) -> None:
    gateway = gateway_process(settings, tmp_path).start()
    reconnects: list[str] = []
    try:
        async with TokenRelayClient(gateway.url, backoff=FAST) as client:
            job = await client.submit(
                prompt="an interval tree\n#sim tokens=200 rate=100 unicode=1", language="typescript"
            )
            transcript = Transcript()
            events: list[JobEvent] = []
            async for event in client.watch(job.id, on_reconnect=reconnects.append):
                events.append(event)
                transcript.apply(event)
                if sum(isinstance(e, TokenEvent) for e in events) == 5 and not reconnects:
                    gateway.kill()
                    await asyncio.to_thread(gateway.start)
    finally:
        gateway.kill()
    assert reconnects, "the gateway was killed, so the client must have reconnected"
    assert isinstance(events[-1], DoneEvent)
    positions = [parse_stream_id(event.id) for event in events]
    assert positions == sorted(set(positions)), "each event once, in order"
    assert transcript.text == await upstream_text(http, upstream_url, job.id)


def _sync_session(url: str) -> tuple[str, str, str, str]:
    with SyncTokenRelayClient(url, backoff=FAST) as relay:
        job = relay.submit(prompt="bubble sort\n#sim tokens=30", language="python")
        transcript = Transcript()
        for event in relay.watch(job.id):
            transcript.apply(event)
        result = relay.result(job.id)
        slow = relay.submit(prompt="slow\n#sim tokens=500 rate=20")
        for event in relay.watch(slow.id):
            if isinstance(event, TokenEvent):
                break
        relay.cancel(slow.id)
        cancelled = relay.result(slow.id)
        return job.id, transcript.text, result.output, cancelled.status


async def test_sync_client_submits_watches_awaits_and_cancels(
    gateway: TestClient[Any, Any],
    worker: RunningWorker,
    http: aiohttp.ClientSession,
    upstream_url: str,
) -> None:
    url = str(gateway.make_url("")).rstrip("/")
    job_id, watched, output, cancelled = await asyncio.to_thread(_sync_session, url)
    assert watched == output == await upstream_text(http, upstream_url, job_id)
    assert cancelled == "cancelled"


async def test_refusals_are_api_errors_not_retries(
    gateway: TestClient[Any, Any], worker: RunningWorker
) -> None:
    url = str(gateway.make_url("")).rstrip("/")
    async with TokenRelayClient(url, backoff=FAST) as client:
        with pytest.raises(APIError) as raised:
            await client.submit(prompt="x", language="cobol")
        assert (raised.value.status, raised.value.code) == (400, "invalid_request")
        with pytest.raises(APIError) as missing:
            async for _ in client.watch("nosuchjob1234567"):
                pass
        assert missing.value.status == 404
