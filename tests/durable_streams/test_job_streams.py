"""A tokenrelay job read as a Durable Stream (``/v1/stream/jobs/{id}``): its text, closed by
its terminal event; a ``reset`` drops the abandoned attempt from the stream's start (an
offset before it answers 410); readers share the job's one feed per gateway."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp.test_utils import TestClient

from service.contract.events import RESET, TOKEN, parse_stream_id
from service.contract.keys import job_events_key
from service.gateway.durable_streams.offsets import format_offset
from service.gateway.state import STATE
from tests.conftest import RunningWorker
from tests.jobs_api import submit, wait_for, wait_until_ended


def stream_url(job: dict[str, Any]) -> str:
    return f"/v1/stream/jobs/{job['id']}?token={job['viewer_token']}"


async def test_a_job_reads_as_its_text_closed_at_its_end(
    gateway: TestClient[Any, Any], worker: RunningWorker
) -> None:
    job = await submit(gateway, "rust\n#sim tokens=40")
    record = await wait_until_ended(gateway, job["id"])
    whole = await gateway.get(stream_url(job), params={"offset": "-1"})
    assert whole.status == 200
    assert await whole.text() == record["output"]
    assert whole.headers["Content-Type"].startswith("text/plain")
    assert whole.headers["Stream-Closed"] == "true"
    tail = whole.headers["Stream-Next-Offset"]
    head = await gateway.head(stream_url(job))
    assert head.headers["Stream-Next-Offset"] == tail
    assert head.headers["Stream-Closed"] == "true"
    at_end = await gateway.get(stream_url(job), params={"offset": tail, "live": "long-poll"})
    assert at_end.status == 204
    assert at_end.headers["Stream-Closed"] == "true"
    # Read-only: appends, creation and deletion are refused.
    for method in ("POST", "PUT", "DELETE"):
        refused = await gateway.request(method, stream_url(job), data=b"x")
        assert refused.status == 405
        assert "GET" in refused.headers["Allow"]


async def test_every_offset_resumes_to_the_exact_rest(
    gateway: TestClient[Any, Any], worker: RunningWorker
) -> None:
    job = await submit(gateway, "kotlin\n#sim tokens=60 unicode=1")
    record = await wait_until_ended(gateway, job["id"])
    redis = gateway.app[STATE].redis
    entries = await redis.xrange(job_events_key(job["id"]))
    text = ""
    for entry_id, fields in entries:
        if fields[b"t"].decode() == TOKEN:
            text += orjson.loads(fields[b"d"])["text"]
        offset = format_offset(parse_stream_id(entry_id.decode()))
        rest = await gateway.get(stream_url(job), params={"offset": offset})
        assert text + await rest.text() == record["output"]


async def test_a_reset_drops_the_abandoned_attempt_and_earlier_offsets_answer_410(
    gateway: TestClient[Any, Any], worker: RunningWorker
) -> None:
    job = await submit(gateway, "go\n#sim tokens=60 rate=100 fail=cut after=25 times=1")
    record = await wait_until_ended(gateway, job["id"])
    redis = gateway.app[STATE].redis
    entries = await redis.xrange(job_events_key(job["id"]))
    kinds = [fields[b"t"].decode() for _, fields in entries]
    assert RESET in kinds, str(kinds)
    reset_at = kinds.index(RESET)
    before = format_offset(parse_stream_id(entries[reset_at - 1][0].decode()))
    at_reset = format_offset(parse_stream_id(entries[reset_at][0].decode()))
    for live in (None, "long-poll", "sse"):
        params = {"offset": before} | ({"live": live} if live else {})
        gone = await gateway.get(stream_url(job), params=params)
        assert gone.status == 410, live
        assert (await gone.json())["error"]["code"] == "job_restarted"
    # From the start (-1) and from the reset on, the stream is the attempt that counted.
    for offset in ("-1", at_reset):
        rest = await gateway.get(stream_url(job), params={"offset": offset})
        assert rest.status == 200
        assert await rest.text() == record["output"]


async def test_readers_of_a_job_share_one_feed(
    gateway: TestClient[Any, Any], worker: RunningWorker
) -> None:
    hub = gateway.app[STATE].hub
    job = await submit(gateway, "zig\n#sim tokens=200 rate=100")
    head = await gateway.head(stream_url(job))
    tail = head.headers["Stream-Next-Offset"]

    async def read(live: str) -> int:
        response = await gateway.get(stream_url(job), params={"offset": tail, "live": live})
        await response.read()
        return response.status

    readers = [asyncio.create_task(read("long-poll" if i % 2 else "sse")) for i in range(8)]
    await wait_for(lambda: _true(hub.total_viewers == 8))
    assert hub.feed_count == 1
    assert hub.lane_readers <= 1
    for reader in readers:
        reader.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    await wait_until_ended(gateway, job["id"])


async def _true(value: bool) -> bool:
    return value


async def test_a_job_stream_opens_with_its_own_viewer_token_only(
    gateway: TestClient[Any, Any], worker: RunningWorker
) -> None:
    job = await submit(gateway, "lua\n#sim tokens=5")
    other = await submit(gateway, "lua\n#sim tokens=5")
    wrong = await gateway.get(
        f"/v1/stream/jobs/{job['id']}", params={"token": other["viewer_token"], "offset": "-1"}
    )
    assert wrong.status == 403
    unknown = await gateway.get("/v1/stream/jobs/not-a-job")
    assert unknown.status == 404
