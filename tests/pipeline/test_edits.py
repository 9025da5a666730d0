"""Edits (a job with a ``target``: the page's generate-into-a-document): the record keeps the
target for share-link viewers, the upstream gets the edit prompt with bounded surroundings; the
light viewer count over every gateway; ``/v1/meta``'s ``simulated_upstream``."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from service.contract.edits import EditTarget
from service.contract.settings import Settings
from service.contract.store.redis_client import AnyRedis
from service.gateway.app import create_app
from tests.conftest import RunningWorker, make_settings
from tests.jobs_api import cancel, submit, upstream_requests, wait_for, wait_until_ended
from worker.prompts import CHARS_PER_TOKEN, EDIT_CONTEXT_TOKENS, edit_messages

BASE = (
    "import os\n\n\ndef load(path):\n    return open(path).read()\n\n\n"
    "def save(path, text):\n    open(path, 'w').write(text)\n"
)
TARGET: dict[str, Any] = {
    "document_id": "doc-1",
    "version": 7,
    "range": {"start_line": 4, "start_column": 1, "end_line": 5, "end_column": 29},
    "base": BASE,
    "name": "files.py",
}


async def test_an_edit_keeps_its_target_and_goes_upstream_as_the_edit_prompt(
    gateway: TestClient[Any, Any],
    worker: RunningWorker,
    http: aiohttp.ClientSession,
    upstream_url: str,
) -> None:
    instruction = "read bytes instead\n#sim tokens=20"
    job = await submit(gateway, instruction, language="python", target=TARGET)
    record = await wait_until_ended(gateway, job["id"])
    assert record["status"] == "done", record
    assert record["prompt"] == instruction
    assert record["target"] == TARGET
    # A share link's viewer token opens the record, target (base text) included.
    response = await gateway.get(f"/v1/jobs/{job['id']}", params={"token": job["viewer_token"]})
    assert (await response.json())["target"] == TARGET

    (request,) = await upstream_requests(http, upstream_url, job["id"])
    sent: str = request["prompt"]  # the last user message
    assert sent.startswith(f"Change to make at the selection:\n{instruction}\n\n")
    assert "\nFile: files.py (python)\nThe selection: line 4, column 1 to line 5" in sent
    assert "<selection>\ndef load(path):\n    return open(path).read()\n</selection>" in sent
    assert "<before>\nimport os\n\n\n\n</before>" in sent
    assert sent.endswith("</after>")


def test_the_edit_prompt_bounds_the_surroundings_in_whole_lines() -> None:
    lines = [f"line_{n} = {n}  # some padding to make it longer" for n in range(3000)]
    base = "\n".join(lines)
    target = EditTarget.model_validate(
        {
            "document_id": "d",
            "version": 1,
            "range": {"start_line": 1500, "start_column": 1, "end_line": 1500, "end_column": 1},
            "base": base,
        }
    )
    system, user = edit_messages("add a comment", target, None)
    content = user["content"]
    budget = EDIT_CONTEXT_TOKENS * CHARS_PER_TOKEN
    assert len(content) < budget + 500
    assert "the cursor: your code goes here" in content and "<selection>" not in content
    before = content.split("<before>\n", 1)[1].split("\n</before>", 1)[0]
    after = content.split("<after>\n", 1)[1].split("\n</after>", 1)[0]
    assert before.endswith(lines[1498] + "\n") and before.split("\n")[0] in lines  # whole lines
    assert after.startswith(lines[1499]) and after.endswith("\n")
    assert after.split("\n")[-2] in lines
    hidden_above = int(content.split("(", 1)[1].split(" lines above not shown)")[0])
    assert before.startswith(lines[hidden_above])
    assert "lines below not shown" in content
    assert "inserted at the cursor" in system["content"]


async def test_viewers_are_counted_over_every_gateway_without_the_record(
    redis_url: str, upstream_url: str, redis: AnyRedis, http: aiohttp.ClientSession
) -> None:
    settings: Settings = make_settings(
        redis_url=redis_url, upstream_url=upstream_url, viewer_report_seconds=0.2
    )
    running = RunningWorker(settings)
    try:
        async with (
            TestClient(TestServer(await create_app(settings, redis))) as first,
            TestClient(TestServer(await create_app(settings, redis))) as second,
        ):
            job = await submit(first, "rust\n#sim tokens=3000 rate=50")
            url = f"/v1/jobs/{job['id']}/viewers"
            token = {"token": job["viewer_token"]}

            async def viewers(client: TestClient[Any, Any]) -> int:
                response = await client.get(url, params=token)
                body: dict[str, Any] = await response.json()
                assert response.status == 200, body
                assert body == {"id": job["id"], "viewers": body["viewers"]}
                return int(body["viewers"])

            assert await viewers(first) == 0
            events = str(second.make_url(job["events_url"]))
            async with http.get(events) as stream:  # one viewer, on the second gateway
                await stream.content.readline()

                async def both_count_one() -> bool:
                    return await viewers(first) == 1 and await viewers(second) == 1

                await wait_for(both_count_one, within=5)
            await asyncio.sleep(0)

            async def none_left() -> bool:
                return await viewers(first) == 0

            await wait_for(none_left, within=5)
            await cancel(first, job)
            missing = await first.get("/v1/jobs/AAAAAAAAAAAAAAAAAAAAAA/viewers")
            assert missing.status == 404
    finally:
        await running.shutdown()


@pytest.mark.parametrize("simulated", [False, True])
async def test_meta_says_whether_the_upstream_is_the_simulator(
    settings: Settings, redis: AnyRedis, simulated: bool
) -> None:
    configured = settings.model_copy(update={"upstream_simulated": simulated})
    async with TestClient(TestServer(await create_app(configured, redis))) as client:
        meta = await (await client.get("/v1/meta")).json()
    assert meta["simulated_upstream"] is simulated
