"""The official ``openai`` SDK's Chat Completions against the gateway: every call is a job, and
the text is exactly what the upstream produced."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from service.contract.keys import job_record_key
from tests.clients.openai_sdk import sdk
from tests.conftest import RunningWorker
from tests.jobs_api import upstream_requests, upstream_text, wait_until_ended


async def test_chat_stream_gives_exactly_the_upstream_text(
    gateway: TestClient[Any, Any],
    worker: RunningWorker,
    http: aiohttp.ClientSession,
    upstream_url: str,
) -> None:
    client = sdk(gateway)
    async with client:
        response = await client.chat.completions.with_raw_response.create(
            model="tokenrelay-sim",
            messages=[{"role": "user", "content": "a trie in go\n#sim tokens=80 unicode=1"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        job_id = response.headers["x-tokenrelay-job-id"]
        assert response.headers["x-tokenrelay-events-url"].startswith(f"/v1/jobs/{job_id}/events")
        chunks = [chunk async for chunk in response.parse()]
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == await upstream_text(http, upstream_url, job_id)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert [reason for reason in finishes if reason] == ["stop"]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    record = await wait_until_ended(gateway, job_id)
    assert record["output"] == text


async def test_chat_without_stream_answers_one_completion(
    gateway: TestClient[Any, Any],
    worker: RunningWorker,
    http: aiohttp.ClientSession,
    upstream_url: str,
    redis: Redis,
) -> None:
    async with sdk(gateway) as client:
        response = await client.chat.completions.with_raw_response.create(
            model="tokenrelay-sim",
            messages=[
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "fizzbuzz\n#sim tokens=40"},
            ],
            temperature=0.2,
            max_tokens=25,
            stop=["\n\n\n"],
        )
        completion = response.parse()
    job_id = response.headers["x-tokenrelay-job-id"]
    stored = orjson.loads(await redis.hget(job_record_key(job_id), "request") or b"{}")
    assert stored["stop"] == ["\n\n\n"]  # the worker sends it upstream with the rest
    assert completion.choices[0].message.content == await upstream_text(http, upstream_url, job_id)
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None and completion.usage.completion_tokens == 25
    record = await wait_until_ended(gateway, job_id)
    assert record["temperature"] == 0.2 and record["max_tokens"] == 25
    assert len(await upstream_requests(http, upstream_url, job_id)) == 1


async def test_chat_stream_stays_exact_through_an_upstream_retry(
    gateway: TestClient[Any, Any],
    worker: RunningWorker,
    http: aiohttp.ClientSession,
    upstream_url: str,
) -> None:
    async with sdk(gateway) as client:
        response = await client.chat.completions.with_raw_response.create(
            model="tokenrelay-sim",
            messages=[
                {"role": "user", "content": "retry me\n#sim tokens=40 fail=cut after=8 times=1"}
            ],
            stream=True,
        )
        chunks = [chunk async for chunk in response.parse()]
    job_id = response.headers["x-tokenrelay-job-id"]
    assert len(await upstream_requests(http, upstream_url, job_id)) == 2
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == await upstream_text(http, upstream_url, job_id)
