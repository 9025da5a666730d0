"""The official ``openai`` SDK's background Responses against the gateway: a response is a job,
its events resume exactly after any ``sequence_number``, on a live job and a finished one."""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient
from openai import AsyncOpenAI

from tests.clients.openai_sdk import ResponsesReader, sdk
from tests.conftest import RunningWorker
from tests.jobs_api import upstream_requests, upstream_text, wait_until_ended


def job_of(response_id: str) -> str:
    return response_id.removeprefix("resp_")


async def read(
    client: AsyncOpenAI, response_id: str, reader: ResponsesReader, limit: int | None = None
) -> None:
    """One connection: events after the reader's last one, up to ``limit`` of them."""
    after = reader.last_sequence
    if after >= 0:
        stream = await client.responses.retrieve(response_id, stream=True, starting_after=after)
    else:
        stream = await client.responses.retrieve(response_id, stream=True)
    taken = 0
    async for event in stream:
        assert event.sequence_number == reader.last_sequence + 1
        reader.take(event)
        taken += 1
        if limit is not None and taken >= limit:
            break
    await stream.close()


async def test_background_response_resumes_exactly_while_live_and_after_the_end(
    gateway: TestClient[Any, Any],
    worker: RunningWorker,
    http: aiohttp.ClientSession,
    upstream_url: str,
) -> None:
    prompt = "an lru cache in rust\n#sim tokens=150 rate=150 unicode=1"
    async with sdk(gateway) as client:
        created = await client.responses.create(
            model="tokenrelay-sim", input=prompt, background=True
        )
        assert created.status == "queued"
        assert created.id.startswith("resp_")
        live = ResponsesReader()
        await read(client, created.id, live, limit=7)
        assert (await client.responses.retrieve(created.id)).status == "in_progress"
        while not live.finished:  # resumes while the job is live, 7 events a connection
            await read(client, created.id, live, limit=7)
        expected = await upstream_text(http, upstream_url, job_of(created.id))
        assert live.text == expected
        assert live.events[0].type == "response.created"
        assert live.events[-1].type == "response.completed"
        assert live.events[-1].response.output_text == expected
        everything = ResponsesReader()
        await read(client, created.id, everything)
        assert [e.to_dict() for e in everything.events] == [e.to_dict() for e in live.events]
        for n in (0, 3, len(live.events) // 2, len(live.events) - 2):  # after the end
            resumed = ResponsesReader()
            for event in everything.events[: n + 1]:
                resumed.take(event)
            await read(client, created.id, resumed)
            assert resumed.text == expected
            assert [e.to_dict() for e in resumed.events] == [e.to_dict() for e in live.events]
        final = await client.responses.retrieve(created.id)
    assert final.status == "completed"
    assert final.output_text == expected
    assert final.usage is not None and final.usage.output_tokens == 150


async def test_create_with_stream_sends_the_events_from_the_first(
    gateway: TestClient[Any, Any],
    worker: RunningWorker,
    http: aiohttp.ClientSession,
    upstream_url: str,
) -> None:
    async with sdk(gateway) as client:
        stream = await client.responses.create(
            model="tokenrelay-sim",
            input=[{"role": "user", "content": "quicksort\n#sim tokens=30"}],
            instructions="python only",
            background=True,
            stream=True,
        )
        reader = ResponsesReader()
        async for event in stream:
            reader.take(event)
    response_id = reader.events[0].response.id
    assert [e.sequence_number for e in reader.events] == list(range(len(reader.events)))
    assert reader.text == await upstream_text(http, upstream_url, job_of(response_id))
    assert [e.type for e in reader.events[:4]] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]


async def test_cancel_ends_the_response_cancelled_for_every_reader(
    gateway: TestClient[Any, Any],
    worker: RunningWorker,
    http: aiohttp.ClientSession,
    upstream_url: str,
) -> None:
    async with sdk(gateway) as client:
        raw = await client.responses.with_raw_response.create(
            model="tokenrelay-sim", input="slow\n#sim tokens=400 rate=50", background=True
        )
        created = raw.parse()
        reader = ResponsesReader()
        await read(client, created.id, reader, limit=6)
        # Auth is off: a reader (with the id, even the viewer token) cannot cancel it ...
        refused = await gateway.post(f"/v1/responses/{created.id}/cancel")
        assert refused.status == 403
        # ... its creator, with the cancel token from the create answer, can.
        cancel_token = raw.headers["X-TokenRelay-Cancel-Token"]
        cancelled = await client.responses.cancel(
            created.id, extra_headers={"X-Cancel-Token": cancel_token}
        )
        assert cancelled.status == "cancelled"
        await read(client, created.id, reader)
        assert reader.events[-1].type == "response.cancelled"
        assert (await client.responses.retrieve(created.id)).status == "cancelled"
        stream = await client.responses.retrieve(created.id, stream=True, starting_after=10**6)
        errors = [event async for event in stream]
        assert [(e.type, getattr(e, "code", None)) for e in errors] == [
            ("error", "unknown_position")
        ]
    record = await wait_until_ended(gateway, job_of(created.id))
    assert record["status"] == "cancelled"
    assert reader.text == record["output"]


async def test_a_retried_attempt_stays_exact_for_the_sdk_reader(
    gateway: TestClient[Any, Any],
    worker: RunningWorker,
    http: aiohttp.ClientSession,
    upstream_url: str,
) -> None:
    async with sdk(gateway) as client:
        created = await client.responses.create(
            model="tokenrelay-sim",
            input="flaky\n#sim tokens=60 rate=200 fail=cut after=8 times=1",
            background=True,
        )
        reader = ResponsesReader()
        while not reader.finished:
            await read(client, created.id, reader, limit=5)
        async with client.responses.stream(response_id=created.id, starting_after=3) as stream:
            final = await stream.get_final_response()
    job_id = job_of(created.id)
    assert len(await upstream_requests(http, upstream_url, job_id)) == 2
    expected = await upstream_text(http, upstream_url, job_id)
    assert reader.text == expected
    assert final.output_text == expected
    abandoned = [
        e
        for e in reader.events
        if e.type == "response.output_item.done" and e.item.status == "incomplete"
    ]
    assert len(abandoned) == 1
    assert abandoned[0].item.id == f"msg_{job_id}_1"
    assert getattr(final.output[0], "id", None) == f"msg_{job_id}_2"
