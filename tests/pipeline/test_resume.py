"""Resume: a viewer that drops continues with the entry right after its Last-Event-ID."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestClient

from service.contract.events import DONE, TOKEN
from service.contract.sse_decoder import SSEEvent
from tests.conftest import RunningWorker
from tests.jobs_api import submit, upstream_text, wait_for, wait_until_ended
from tests.sse_client import ResumingViewer, read_stream, text_of


@pytest.mark.parametrize("via_query", [False, True], ids=["header", "query"])
async def test_resume_continues_right_after_last_event_id(
    gateway: TestClient[Any, Any],
    worker: RunningWorker,
    http: aiohttp.ClientSession,
    upstream_url: str,
    via_query: bool,
) -> None:
    job = await submit(gateway, "rust parser\n#sim tokens=150 rate=300 unicode=1")
    viewer = ResumingViewer(http, str(gateway.make_url(job["events_url"])))
    while not viewer.finished:
        assert await viewer.read(max_events=random.randint(1, 6), via_query=via_query) == 200
    assert viewer.connections > 3
    ids = [event.id for event in viewer.events]
    assert len(ids) == len(set(ids)), "an event was repeated"
    assert viewer.text == await upstream_text(http, upstream_url, job["id"])


async def test_many_viewers_with_random_drops_all_end_exact(
    gateway: TestClient[Any, Any],
    worker: RunningWorker,
    http: aiohttp.ClientSession,
    upstream_url: str,
) -> None:
    jobs = [
        await submit(gateway, f"job {n} in typescript\n#sim tokens={40 + 10 * n} rate=400")
        for n in range(6)
    ]
    rng = random.Random(7)

    async def watch(url: str) -> ResumingViewer:
        viewer = ResumingViewer(http, url)
        while not viewer.finished:
            await asyncio.sleep(rng.random() * 0.03)
            await viewer.read(max_events=rng.randint(1, 12), via_query=rng.random() < 0.5)
        return viewer

    viewers = await asyncio.gather(
        *(watch(str(gateway.make_url(job["events_url"]))) for job in jobs for _ in range(4))
    )
    for index, viewer in enumerate(viewers):
        job = jobs[index // 4]
        assert viewer.text == await upstream_text(http, upstream_url, job["id"])
        assert viewer.events[-1].event == DONE


async def test_resume_after_completion_replays_merged_tokens_exactly(
    gateway: TestClient[Any, Any],
    worker: RunningWorker,
    http: aiohttp.ClientSession,
    upstream_url: str,
) -> None:
    job = await submit(gateway, "c hash map\n#sim tokens=200 rate=0 unicode=1")
    await wait_until_ended(gateway, job["id"])
    url = str(gateway.make_url(job["events_url"]))
    full = await read_stream(http, url)
    expected = await upstream_text(http, upstream_url, job["id"])
    assert text_of(full.events) == expected
    # Resume from every event id the first reading saw: the rest is always exact.
    for cut in range(len(full.events) - 1):
        rest = await read_stream(http, url, last_event_id=full.events[cut].id)
        assert text_of(full.events[: cut + 1] + rest.events) == expected
        assert rest.events[-1].event == DONE


async def test_resume_from_an_entry_inside_a_merged_replay_event_is_exact(
    gateway: TestClient[Any, Any],
    worker: RunningWorker,
    http: aiohttp.ClientSession,
    upstream_url: str,
) -> None:
    """Replay merges token entries into one event; resuming from any entry it merged (an id
    another gateway or a live reader may have sent) still continues exactly."""
    from service.contract.keys import job_events_key
    from service.gateway.state import STATE

    job = await submit(gateway, "java class\n#sim tokens=60 rate=0")
    await wait_until_ended(gateway, job["id"])
    entries = await gateway.app[STATE].redis.xrange(job_events_key(job["id"]))
    expected = await upstream_text(http, upstream_url, job["id"])
    url = str(gateway.make_url(job["events_url"]))
    head = ""
    for entry_id, fields in entries:
        if fields[b"t"] != TOKEN.encode():
            continue
        head += orjson.loads(fields[b"d"])["text"]
        rest = await read_stream(http, url, last_event_id=entry_id.decode())
        assert head + text_of(rest.events) == expected


async def test_reconnect_at_the_terminal_event_gets_204(
    gateway: TestClient[Any, Any], worker: RunningWorker, http: aiohttp.ClientSession
) -> None:
    job = await submit(gateway, "sql query\n#sim tokens=10 rate=0")
    url = str(gateway.make_url(job["events_url"]))
    full = await read_stream(http, url)
    assert full.events[-1].event == DONE
    again = await read_stream(http, url, last_event_id=full.events[-1].id)
    assert again.status == 204
    far = await read_stream(http, url, last_event_id="99999999999999-0")
    assert far.status == 204


async def test_malformed_last_event_id_is_400(
    gateway: TestClient[Any, Any], http: aiohttp.ClientSession
) -> None:
    job = await submit(gateway, "anything")
    url = str(gateway.make_url(job["events_url"]))
    for bad in ["abc", "1-2-3", "-1-0", "1-", "18446744073709551616-0", "1-0\nid: 2"]:
        params = {"last_event_id": bad}
        async with http.get(url, params=params) as response:
            assert response.status == 400, bad
            body = await response.json()
            assert body["error"]["code"] == "invalid_last_event_id"


async def test_unknown_position_in_a_live_stream_sends_reset_then_full_replay(
    gateway: TestClient[Any, Any],
    worker: RunningWorker,
    http: aiohttp.ClientSession,
    upstream_url: str,
) -> None:
    job = await submit(gateway, "kotlin\n#sim tokens=40 rate=0")
    await wait_until_ended(gateway, job["id"])
    url = str(gateway.make_url(job["events_url"]))
    reading = await read_stream(http, url, last_event_id="1-0")
    assert reading.events[0].event == "reset"
    assert text_of(reading.events) == await upstream_text(http, upstream_url, job["id"])


async def test_joiners_of_a_long_live_job_get_its_past_merged_and_stay_exact(
    gateway: TestClient[Any, Any],
    worker: RunningWorker,
    http: aiohttp.ClientSession,
    upstream_url: str,
) -> None:
    """The feed replays its older live batches as merged events (fewer bytes for a storm of
    resumes or a crowd of late joiners); from scratch or from any id, the text is exact."""
    job = await submit(gateway, "long kotlin file\n#sim tokens=700 rate=350 unicode=1")
    url = str(gateway.make_url(job["events_url"]))
    seen: list[SSEEvent] = []
    # Watches from the start, so the gateway's feed holds the job's history as live batches.
    holder = asyncio.create_task(read_stream(http, url, sink=seen))

    async def far_enough() -> bool:
        return len(seen) > 150

    await wait_for(far_enough)
    rng = random.Random(3)
    cuts = [None, *sorted(rng.sample(range(len(seen) - 1), 8))]
    joiners = await asyncio.gather(
        *(
            read_stream(http, url, last_event_id=None if cut is None else seen[cut].id)
            for cut in cuts
        )
    )
    await holder
    expected = await upstream_text(http, upstream_url, job["id"])
    assert text_of(seen) == expected
    for cut, joiner in zip(cuts, joiners, strict=True):
        head = [] if cut is None else seen[: cut + 1]
        assert text_of(head + joiner.events) == expected
        assert joiner.events[-1].event == DONE
    from_scratch = joiners[0].events
    assert len(from_scratch) < len(seen) - 50, "the past was not merged"
