"""Code-only output through the whole pipeline: the simulator answers with prose and fences,
the worker extracts the code before writing, and every viewer, every resume and the job's
record see the same code; the upstream's text is kept as ``raw_output``."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestClient

from service.contract.events import DONE, RESET, STATUS, TOKEN
from service.contract.keys import job_raw_output_key, job_record_key
from service.contract.settings import Settings
from service.contract.sse_decoder import SSEEvent
from service.contract.store.cancel import cancel_job
from service.contract.store.redis_client import AnyRedis
from service.contract.store.scripts import Scripts
from tests.conftest import RunningWorker
from tests.jobs_api import submit, upstream_requests, upstream_text, wait_for, wait_until_ended
from tests.sse_client import ResumingViewer, read_stream, text_of
from worker.code_extractor import extract_code


def detected_languages(events: list[SSEEvent]) -> list[tuple[int, str]]:
    """(attempt, language) of every status event that names a detected language."""
    found = []
    for event in events:
        if event.event == STATUS:
            data = orjson.loads(event.data)
            if "detected_language" in data:
                found.append((data["attempt"], data["detected_language"]))
    return found


async def test_a_fenced_answer_streams_only_its_code_and_keeps_the_raw_text(
    gateway: TestClient[Any, Any],
    worker: RunningWorker,
    http: aiohttp.ClientSession,
    upstream_url: str,
    redis: AnyRedis,
    settings: Settings,
) -> None:
    job = await submit(gateway, "a binary search in go\n#sim tokens=80 rate=300 fences=2")
    reading = await read_stream(http, str(gateway.make_url(job["events_url"])))
    assert reading.events[-1].event == DONE
    raw = await upstream_text(http, upstream_url, job["id"])
    code = extract_code(raw).code
    assert code and "```" not in code and code != raw
    assert text_of(reading.events) == code
    # The language is announced once, before the first token.
    kinds = [event.event for event in reading.events]
    assert detected_languages(reading.events) == [(1, "go")]
    announced = next(
        i for i, e in enumerate(reading.events) if e.event == STATUS and "detected" in e.data
    )
    assert announced < kinds.index(TOKEN)
    record = await wait_until_ended(gateway, job["id"])
    assert (record["output"], record["raw_output"], record["output_mode"]) == (code, raw, "code")
    assert (record["detected_language"], record["blocks_dropped"]) == ("go", 1)
    # The raw text expires with the job's other keys.
    ttl = await redis.ttl(job_raw_output_key(job["id"]))
    assert 0 < ttl <= settings.retention_seconds


async def test_a_resume_mid_stream_stays_exact(
    gateway: TestClient[Any, Any],
    worker: RunningWorker,
    http: aiohttp.ClientSession,
    upstream_url: str,
) -> None:
    jobs = [
        await submit(gateway, f"a parser in rust, {n}\n#sim tokens=150 rate=200 fences=2 unicode=1")
        for n in range(3)
    ]
    rng = random.Random(13)

    async def watch(url: str) -> ResumingViewer:
        viewer = ResumingViewer(http, url)
        while not viewer.finished:
            await asyncio.sleep(rng.random() * 0.02)
            assert await viewer.read(max_events=rng.randint(1, 4), via_query=rng.random() < 0.5)
        return viewer

    urls = [str(gateway.make_url(job["events_url"])) for job in jobs]
    viewers = await asyncio.gather(*(watch(url) for url in urls for _ in range(3)))
    assert sum(viewer.connections for viewer in viewers) > 10 * len(viewers)  # resumed live
    for index, job in enumerate(jobs):
        url = urls[index]
        code = extract_code(await upstream_text(http, upstream_url, job["id"])).code
        for viewer in viewers[3 * index : 3 * index + 3]:
            ids = [event.id for event in viewer.events]
            assert len(ids) == len(set(ids)), "an event was repeated"
            assert viewer.text == code
        # After the end, resuming from every event id gives exactly the rest.
        full = (await read_stream(http, url)).events
        assert text_of(full) == code
        for cut in range(len(full) - 1):
            rest = await read_stream(http, url, last_event_id=full[cut].id)
            assert text_of(full[: cut + 1] + rest.events) == code


async def test_a_retry_with_reset_restarts_the_extractor(
    gateway: TestClient[Any, Any],
    worker: RunningWorker,
    http: aiohttp.ClientSession,
    upstream_url: str,
    redis: AnyRedis,
) -> None:
    # The first attempt is cut inside the code block, after some of its code was written.
    job = await submit(
        gateway, "a trie in go\n#sim tokens=60 rate=300 fences=1 fail=cut after=25 times=1"
    )
    reading = await read_stream(http, str(gateway.make_url(job["events_url"])))
    assert reading.events[-1].event == DONE
    kinds = [event.event for event in reading.events]
    assert kinds.count(RESET) == 1
    assert TOKEN in kinds[: kinds.index(RESET)]  # attempt 1 had written code
    requests = await upstream_requests(http, upstream_url, job["id"])
    assert len(requests) == 2
    code = extract_code(requests[-1]["text"]).code
    assert text_of(reading.events) == code
    # The second attempt's extractor started afresh: its preamble and fence were dropped
    # again, and it announced its language again.
    assert detected_languages(reading.events) == [(1, "go"), (2, "go")]
    record = await wait_until_ended(gateway, job["id"])
    assert (record["output"], record["raw_output"]) == (code, requests[-1]["text"])


async def test_a_retry_before_any_code_clears_the_raw_text_without_a_reset(
    gateway: TestClient[Any, Any],
    worker: RunningWorker,
    http: aiohttp.ClientSession,
    upstream_url: str,
) -> None:
    # Cut inside the prose: nothing reached a viewer, so no reset; the raw text starts over.
    job = await submit(
        gateway, "a queue in python\n#sim tokens=40 rate=300 fences=1 fail=cut after=3 times=1"
    )
    reading = await read_stream(http, str(gateway.make_url(job["events_url"])))
    assert RESET not in [event.event for event in reading.events]
    requests = await upstream_requests(http, upstream_url, job["id"])
    assert len(requests) == 2
    record = await wait_until_ended(gateway, job["id"])
    assert record["raw_output"] == requests[-1]["text"]
    assert record["output"] == text_of(reading.events) == extract_code(requests[-1]["text"]).code


async def test_raw_output_is_the_upstream_text_untouched(
    gateway: TestClient[Any, Any],
    worker: RunningWorker,
    http: aiohttp.ClientSession,
    upstream_url: str,
    redis: AnyRedis,
) -> None:
    job = await submit(gateway, "an LRU cache\n#sim tokens=50 rate=300 fences=2", output="raw")
    reading = await read_stream(http, str(gateway.make_url(job["events_url"])))
    raw = await upstream_text(http, upstream_url, job["id"])
    assert "```" in raw
    assert text_of(reading.events) == raw
    assert detected_languages(reading.events) == []
    record = await wait_until_ended(gateway, job["id"])
    assert (record["output"], record["raw_output"], record["output_mode"]) == (raw, raw, "raw")
    assert (record["detected_language"], record["blocks_dropped"]) == (None, 0)
    assert not await redis.exists(job_raw_output_key(job["id"]))  # not stored twice


async def test_an_answer_without_fences_is_code_as_it_came(
    gateway: TestClient[Any, Any],
    worker: RunningWorker,
    http: aiohttp.ClientSession,
    upstream_url: str,
) -> None:
    job = await submit(gateway, "a heap in c\n#sim tokens=60 rate=300 unicode=1")
    reading = await read_stream(http, str(gateway.make_url(job["events_url"])))
    raw = await upstream_text(http, upstream_url, job["id"])
    assert text_of(reading.events) == raw
    record = await wait_until_ended(gateway, job["id"])
    assert (record["output"], record["raw_output"], record["detected_language"]) == (raw, raw, None)


async def test_a_cancelled_job_keeps_its_raw_text_only_as_long_as_the_rest(
    gateway: TestClient[Any, Any],
    worker: RunningWorker,
    redis: AnyRedis,
    settings: Settings,
) -> None:
    job = await submit(gateway, "a router in go\n#sim tokens=400 rate=100 fences=1")

    async def some_raw_text() -> bool:
        return bool(await redis.exists(job_raw_output_key(job["id"])))

    await wait_for(some_raw_text)
    assert await redis.ttl(job_raw_output_key(job["id"])) > settings.retention_seconds
    # The one cancel path (the HTTP API's, the CLI's), whoever may call it.
    assert await cancel_job(redis, Scripts.register(redis), settings, job["id"])
    assert 0 < await redis.ttl(job_raw_output_key(job["id"])) <= settings.retention_seconds


@pytest.mark.parametrize("output", ["markdown", "", 1, None])
async def test_an_unknown_output_mode_is_refused(
    gateway: TestClient[Any, Any], redis: AnyRedis, output: Any
) -> None:
    response = await gateway.post("/v1/jobs", json={"prompt": "x", "output": output})
    body = await response.json()
    assert response.status == 400
    assert body["error"]["code"] == "invalid_request"
    assert "output" in body["error"]["message"]
    assert await redis.keys(job_record_key("*")) == []


async def test_the_openai_facade_answers_what_the_model_said_unless_asked_for_code(
    gateway: TestClient[Any, Any],
    worker: RunningWorker,
    http: aiohttp.ClientSession,
    upstream_url: str,
) -> None:
    contents = {}
    for output in (None, "code"):
        body: dict[str, Any] = {
            "model": "tokenrelay-sim",
            "messages": [{"role": "user", "content": "a stack in python\n#sim tokens=30 fences=1"}],
        }
        if output is not None:
            body["output"] = output
        response = await gateway.post("/v1/chat/completions", json=body)
        assert response.status == 200, await response.text()
        completion = await response.json()
        job_id = response.headers["X-TokenRelay-Job-Id"]
        raw = await upstream_text(http, upstream_url, job_id)
        contents[output] = (completion["choices"][0]["message"]["content"], raw)
    said, raw = contents[None]
    assert said == raw and "```" in said
    code, raw = contents["code"]
    assert code == extract_code(raw).code and "```" not in code
