"""The Vercel AI SDK's own client against ``/v1/ai-sdk/chat``: the Node driver
(tests/ai_sdk/driver.mjs, the ``ai`` package pinned in tests/ai_sdk/package-lock.json) runs
``DefaultChatTransport``, ``readUIMessageStream`` and the Chat class ``useChat`` wraps against
a real stack (Redis, gateway, worker, the simulated upstream), and every text is compared with
what the upstream sent."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from service.cli.embedded_redis import RedisServer
from service.contract.settings import Settings
from service.contract.store.redis_client import AnyRedis
from service.gateway.app import create_app
from tests.conftest import RunningWorker
from tests.jobs_api import upstream_requests, upstream_text, wait_for, wait_until_ended
from tests.processes import gateway_process, worker_process

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
DRIVER = HERE / "driver.mjs"
KEY = "sk-ai-sdk-test"
OTHER_KEY = "sk-ai-sdk-other"

# The chunks of a generation that ran through once.
ONE_ATTEMPT = ["start", "start-step", "text-start", "text-delta", "text-end", "finish-step"]


@pytest.fixture(autouse=True)
def node_driver() -> None:
    """The driver needs Node.js and the pinned ``ai`` package (``make test`` installs it)."""
    if shutil.which("node") is None:
        pytest.fail("the AI SDK tests need Node.js (`node`) on PATH", pytrace=False)
    if not (HERE / "node_modules" / "ai" / "package.json").is_file():
        pytest.fail(
            "tests/ai_sdk/node_modules is missing: run `make test`, or "
            "`npm ci --prefix tests/ai_sdk` once, before these tests",
            pytrace=False,
        )


@pytest.fixture
def redis_url(request: pytest.FixtureRequest, redis_server: RedisServer) -> str:
    """A single Redis, or (``indirect`` parametrization) a Redis Cluster."""
    if getattr(request, "param", "single") == "cluster":
        url: str = request.getfixturevalue("redis_cluster").url
        return url
    return redis_server.url


class Driver:
    """One run of the Node driver: its JSON lines as they come, and its stdin."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def event(self, kind: str, *, within: float = 60.0) -> dict[str, Any]:
        """The next line of kind ``kind`` (skipping others); a failure raises."""
        assert self.process.stdout is not None
        while True:
            line = await asyncio.wait_for(self.process.stdout.readline(), within)
            if not line:
                await self.process.wait()
                assert self.process.stderr is not None
                stderr = (await self.process.stderr.read()).decode(errors="replace")
                raise AssertionError(f"the driver exited ({self.process.returncode}): {stderr}")
            event: dict[str, Any] = json.loads(line)
            if event["event"] == "failure":
                raise AssertionError(f"the driver failed: {event['message']}\n{event['stack']}")
            if event["event"] == "result" and kind != "result":
                raise AssertionError(f"the driver ended before {kind!r}: {event}")
            if event["event"] == kind:
                return event

    async def say(self, line: str = "go") -> None:
        """Write one line to its stdin (the scenario waits for it)."""
        assert self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")
        await self.process.stdin.drain()

    async def result(self) -> dict[str, Any]:
        """Its result; it has exited 0."""
        result = await self.event("result")
        assert await asyncio.wait_for(self.process.wait(), 10) == 0
        return result


@asynccontextmanager
async def driver(scenario: str, base_url: str, **options: Any) -> AsyncIterator[Driver]:
    """Run ``node tests/ai_sdk/driver.mjs <scenario> <base_url> <options>``."""
    process = await asyncio.create_subprocess_exec(
        "node",
        str(DRIVER),
        scenario,
        base_url.rstrip("/"),
        json.dumps(options),
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        limit=1 << 24,
    )
    try:
        yield Driver(process)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def run(scenario: str, base_url: str, **options: Any) -> dict[str, Any]:
    """A scenario that needs nothing from the test while it runs: its result."""
    async with driver(scenario, base_url, **options) as node:
        return await node.result()


def base(gateway: TestClient[Any, Any]) -> str:
    return str(gateway.make_url("/")).rstrip("/")


def types(chunks: list[dict[str, Any]]) -> list[str]:
    """The chunk types, each run of one type once (text-delta runs vary with timing)."""
    out: list[str] = []
    for chunk in chunks:
        if not out or out[-1] != chunk["type"]:
            out.append(chunk["type"])
    return out


def text_parts(message: dict[str, Any]) -> list[str]:
    return [part["text"] for part in message["parts"] if part["type"] == "text"]


def job_of(result: dict[str, Any]) -> str:
    """The job behind the driver's first response (the ``X-TokenRelay-Job-Id`` header)."""
    job_id: str = result["responses"][0]["jobId"]
    assert job_id
    return job_id


@pytest.mark.parametrize("redis_url", ["single", "cluster"], indirect=True)
async def test_a_generation_streams_to_the_exact_text(
    gateway: TestClient[Any, Any],
    worker: RunningWorker,
    http: aiohttp.ClientSession,
    upstream_url: str,
) -> None:
    result = await run(
        "send", base(gateway), chatId="exact", prompt="a lexer in go\n#sim tokens=80 unicode=1"
    )
    job_id = job_of(result)
    [response] = result["responses"]
    assert (response["method"], response["status"]) == ("POST", 200)
    assert response["protocol"] == "v1"
    assert response["contentType"].startswith("text/event-stream")
    [chunks] = result["streams"]
    assert types(chunks) == [*ONE_ATTEMPT, "finish"]
    assert chunks[0] == {"type": "start", "messageId": f"msg_{job_id}"}
    assert chunks[-1] == {"type": "finish", "finishReason": "stop"}
    assert result["errors"] == []
    expected = await upstream_text(http, upstream_url, job_id)
    assert result["text"] == expected
    assert result["message"]["id"] == f"msg_{job_id}"
    assert [part["type"] for part in result["message"]["parts"]] == ["step-start", "text"]
    assert (await wait_until_ended(gateway, job_id))["output"] == expected


async def test_a_reconnect_after_the_end_is_204(
    gateway: TestClient[Any, Any], worker: RunningWorker
) -> None:
    never = await run("reconnect", base(gateway), chatId="never-used")
    assert never["stream"] is None
    assert never["responses"][0]["status"] == 204
    sent = await run("send", base(gateway), chatId="ended", prompt="short\n#sim tokens=5")
    await wait_until_ended(gateway, job_of(sent))
    after = await run("reconnect", base(gateway), chatId="ended")
    assert after["stream"] is None
    assert [(r["method"], r["status"]) for r in after["responses"]] == [("GET", 204)]


async def test_a_reconnect_mid_generation_gets_the_whole_text_once(
    gateway: TestClient[Any, Any],
    worker: RunningWorker,
    http: aiohttp.ClientSession,
    upstream_url: str,
) -> None:
    result = await run(
        "resume",
        base(gateway),
        chatId="resume-mid",
        prompt="a trie in rust\n#sim tokens=200 rate=60 unicode=1",
        progressChars=20,
        disconnect="client",
    )
    post, get = result["responses"]
    assert (post["method"], get["method"], get["status"]) == ("POST", "GET", 200)
    job_id = post["jobId"]
    assert get["jobId"] == job_id
    expected = await upstream_text(http, upstream_url, job_id)
    user, partial = result["interrupted"]["messages"]
    assert 20 <= len("".join(text_parts(partial))) < len(expected)
    chat = result["chat"]
    assert (chat["status"], chat["error"]) == ("ready", None)
    [again_user, answer] = chat["messages"]  # the same two messages: none added by the resume
    assert again_user == user
    assert answer["id"] == partial["id"] == f"msg_{job_id}"
    assert [part["type"] for part in answer["parts"]] == ["step-start", "text"]
    assert text_parts(answer) == [expected]
    assert answer["parts"][1]["state"] == "done"
    # The resumed stream was the whole generation again, from its start.
    assert types(result["streams"][1]) == [*ONE_ATTEMPT, "finish"]
    # The disconnect did not stop the job: one upstream call, finished.
    assert len(await upstream_requests(http, upstream_url, job_id)) == 1
    assert (await wait_until_ended(gateway, job_id))["status"] == "done"


@pytest.mark.slow
async def test_a_reconnect_across_a_gateway_restart_gets_the_whole_text_once(
    settings: Settings,
    redis: AnyRedis,
    worker: RunningWorker,
    http: aiohttp.ClientSession,
    upstream_url: str,
    tmp_path: Path,
) -> None:
    gateway = gateway_process(settings, tmp_path).start()
    try:
        async with driver(
            "resume",
            gateway.url,
            chatId="restart",
            prompt="a b-tree in c\n#sim tokens=250 rate=50",
            progressChars=20,
            disconnect="server",
        ) as node:
            await node.event("progress")
            gateway.kill()
            interrupted = await node.event("interrupted")
            # Off the event loop: the in-process worker and upstream keep streaming meanwhile
            # (a blocked loop would trip the worker's upstream idle timeout and retry).
            await asyncio.to_thread(gateway.start)
            await node.say()
            result = await node.result()
    finally:
        gateway.kill()
    assert interrupted["chat"]["status"] == "error"  # the connection broke mid-stream
    post, get = result["responses"]
    assert get["status"] == 200
    job_id = post["jobId"]
    expected = await upstream_text(http, upstream_url, job_id)
    partial = interrupted["chat"]["messages"][1]
    assert len("".join(text_parts(partial))) < len(expected)
    chat = result["chat"]
    assert (chat["status"], chat["error"]) == ("ready", None)
    [_, answer] = chat["messages"]
    assert answer["id"] == partial["id"] == f"msg_{job_id}"
    assert text_parts(answer) == [expected]
    assert len(await upstream_requests(http, upstream_url, job_id)) == 1


@pytest.mark.slow
async def test_a_gateway_shutting_down_cuts_the_stream_so_the_client_resumes_elsewhere(
    settings: Settings,
    redis: AnyRedis,
    worker: RunningWorker,
    http: aiohttp.ClientSession,
    upstream_url: str,
    tmp_path: Path,
) -> None:
    old = gateway_process(settings, tmp_path).start()
    new = gateway_process(settings, tmp_path).start()
    try:
        async with driver(
            "send",
            old.url,
            chatId="moving",
            prompt="a heap in zig\n#sim tokens=250 rate=60",
            progressChars=20,
        ) as node:
            await node.event("progress")
            old.signal(signal.SIGTERM)
            cut = await node.result()
        assert old.wait() == 0
        resumed = await run("reconnect", new.url, chatId="moving")
    finally:
        old.kill()
        new.kill()
    # Not a clean end (which the client would take for a complete message): a network error.
    assert cut["errors"]
    assert "finish" not in types(cut["streams"][0])
    expected = await upstream_text(http, upstream_url, job_of(cut))
    assert len(cut["text"]) < len(expected)
    assert resumed["stream"] == "open"
    assert resumed["text"] == expected
    assert resumed["message"]["id"] == cut["message"]["id"]


def assert_one_retry(result: dict[str, Any], expected: str) -> None:
    """The stream abandoned the first attempt's part and the message holds only the second's."""
    [chunks] = result["streams"]
    assert types(chunks) == [
        *ONE_ATTEMPT[:4],
        "text-end",
        "reset-step",
        "text-start",
        "text-delta",
        "text-end",
        "finish-step",
        "finish",
    ]
    starts = [chunk["id"] for chunk in chunks if chunk["type"] == "text-start"]
    assert starts == ["text-1", "text-2"]
    assert result["errors"] == []
    assert [part["type"] for part in result["message"]["parts"]] == ["step-start", "text"]
    assert text_parts(result["message"]) == [expected]


async def test_an_upstream_retry_replaces_the_abandoned_text(
    gateway: TestClient[Any, Any],
    worker: RunningWorker,
    http: aiohttp.ClientSession,
    upstream_url: str,
) -> None:
    result = await run(
        "send",
        base(gateway),
        chatId="flaky",
        # Cut well past the first lines, which a code-only job may hold back: attempt 1 wrote.
        prompt="flaky\n#sim tokens=80 rate=200 fail=cut after=40 times=1",
    )
    job_id = job_of(result)
    assert len(await upstream_requests(http, upstream_url, job_id)) == 2
    assert_one_retry(result, await upstream_text(http, upstream_url, job_id))


@pytest.mark.slow
async def test_a_worker_killed_mid_generation_ends_with_the_new_attempts_text(
    gateway: TestClient[Any, Any],
    settings: Settings,
    http: aiohttp.ClientSession,
    upstream_url: str,
    tmp_path: Path,
) -> None:
    doomed = worker_process(settings, tmp_path, "doomed").start()
    second: RunningWorker | None = None
    try:
        async with driver(
            "send",
            base(gateway),
            chatId="killed",
            prompt="long rust job\n#sim tokens=300 rate=60 unicode=1",
            progressChars=20,
        ) as node:
            await node.event("progress")
            doomed.kill()
            second = RunningWorker(settings)
            result = await node.result()
    finally:
        doomed.kill()
        if second is not None:
            await second.shutdown()
    job_id = job_of(result)
    requests = await upstream_requests(http, upstream_url, job_id)
    assert [r["headers"]["x-tokenrelay-attempt"] for r in requests] == ["1", "2"]
    assert_one_retry(result, requests[-1]["text"])
    record = await wait_until_ended(gateway, job_id)
    assert (record["attempt"], record["output"]) == (2, requests[-1]["text"])


async def test_stop_cancels_the_job_and_its_upstream_call(
    gateway: TestClient[Any, Any],
    worker: RunningWorker,
    http: aiohttp.ClientSession,
    upstream_url: str,
) -> None:
    result = await run(
        "send",
        base(gateway),
        chatId="stopped",
        prompt="long job\n#sim tokens=2000 rate=50",
        stopAtChars=10,
    )
    job_id = job_of(result)
    assert result["stop"] == {
        "status": 200,
        "body": {"success": True, "job_id": job_id, "cancelled": True},
    }
    [chunks] = result["streams"]
    assert types(chunks)[-2:] == ["text-end", "abort"]
    assert chunks[-1] == {"type": "abort", "reason": "cancelled"}
    record = await wait_until_ended(gateway, job_id)
    assert record["status"] == "cancelled"
    assert result["text"] == record["output"]

    async def upstream_call_closed() -> bool:
        requests = await upstream_requests(http, upstream_url, job_id)
        return bool(requests[-1]["status"] == "client_disconnected")

    await wait_for(upstream_call_closed, within=3.0)
    assert (await run("reconnect", base(gateway), chatId="stopped"))["stream"] is None
    again = await gateway.post("/v1/ai-sdk/chat/stopped/stop")
    assert await again.json() == {"success": True, "job_id": job_id, "cancelled": False}


async def test_a_stop_for_an_older_generation_leaves_the_newer_one(
    gateway: TestClient[Any, Any], worker: RunningWorker
) -> None:
    first = await run("send", base(gateway), chatId="twice", prompt="one\n#sim tokens=3")
    async with driver(
        "send",
        base(gateway),
        chatId="twice",
        prompt="two\n#sim tokens=400 rate=80",
        progressChars=5,
    ) as node:
        await node.event("progress")
        stale = await gateway.post(
            "/v1/ai-sdk/chat/twice/stop", json={"activeStreamId": f"msg_{job_of(first)}"}
        )
        assert (await stale.json())["cancelled"] is False
        second = await node.result()
    assert second["streams"][0][-1]["type"] == "finish"


async def test_a_failed_generation_ends_with_an_error_chunk(
    gateway: TestClient[Any, Any], worker: RunningWorker
) -> None:
    result = await run(
        "send", base(gateway), chatId="failing", prompt="php\n#sim tokens=10 fail=500"
    )
    [chunks] = result["streams"]
    assert types(chunks) == ["start", "start-step", "error"]
    [error] = result["errors"]
    assert error == chunks[-1]["errorText"]
    assert "upstream" in error.lower()
    assert (await wait_until_ended(gateway, job_of(result)))["status"] == "failed"


USER = [{"id": "u1", "role": "user", "parts": [{"type": "text", "text": "hi"}]}]

BAD_CHATS: list[tuple[str, Any, int, str]] = [
    ("not json", b"{nope", 400, "invalid_json"),
    ("json array", b"[1]", 400, "invalid_body"),
    ("no chat id", {"messages": USER}, 400, "invalid_request"),
    ("no messages", {"id": "c"}, 400, "invalid_request"),
    ("empty messages", {"id": "c", "messages": []}, 400, "invalid_request"),
    ("unknown field", {"id": "c", "messages": USER, "colour": "red"}, 400, "unknown_parameter"),
    (
        "no user message",
        {"id": "c", "messages": [{"role": "system", "parts": [{"type": "text", "text": "x"}]}]},
        400,
        "invalid_request",
    ),
    (
        "tool role",
        {"id": "c", "messages": [{"role": "tool", "parts": []}]},
        400,
        "invalid_request",
    ),
    (
        "file part",
        {
            "id": "c",
            "messages": [
                {"role": "user", "parts": [{"type": "file", "url": "x", "mediaType": "image/png"}]}
            ],
        },
        400,
        "unsupported_part",
    ),
    (
        "text part without text",
        {"id": "c", "messages": [{"role": "user", "parts": [{"type": "text"}]}]},
        400,
        "invalid_request",
    ),
    (
        "unknown language",
        {"id": "c", "messages": USER, "language": "cobol"},
        400,
        "invalid_request",
    ),
    (
        "temperature too high",
        {"id": "c", "messages": USER, "temperature": 3},
        400,
        "invalid_request",
    ),
    (
        "prompt too long",
        {
            "id": "c",
            "messages": [{"role": "user", "parts": [{"type": "text", "text": "x" * 40_000}]}],
        },
        413,
        "prompt_too_large",
    ),
]


@pytest.mark.parametrize(
    ("body", "status", "code"), [c[1:] for c in BAD_CHATS], ids=[c[0] for c in BAD_CHATS]
)
async def test_a_bad_chat_request_is_a_json_error_and_writes_nothing(
    gateway: TestClient[Any, Any],
    redis: AnyRedis,
    http: aiohttp.ClientSession,
    upstream_url: str,
    body: Any,
    status: int,
    code: str,
) -> None:
    keys_before = set(await redis.keys("*"))
    if isinstance(body, bytes):
        response = await gateway.post(
            "/v1/ai-sdk/chat", data=body, headers={"Content-Type": "application/json"}
        )
    else:
        response = await gateway.post("/v1/ai-sdk/chat", json=body)
    assert response.status == status
    error = (await response.json())["error"]
    assert set(error) == {"code", "message"}
    assert error["code"] == code
    assert set(await redis.keys("*")) == keys_before
    assert await upstream_requests(http, upstream_url) == []


@pytest.fixture
async def secured(settings: Settings, redis: AnyRedis) -> AsyncIterator[TestClient[Any, Any]]:
    locked = settings.model_copy(update={"api_keys": [SecretStr(KEY), SecretStr(OTHER_KEY)]})
    async with TestClient(TestServer(await create_app(locked, redis))) as client:
        yield client


async def test_with_auth_on_every_route_needs_a_key_and_a_chat_is_its_keys_own(
    secured: TestClient[Any, Any],
    worker: RunningWorker,
    redis: AnyRedis,
    http: aiohttp.ClientSession,
    upstream_url: str,
) -> None:
    body = {"id": "mine", "messages": USER}
    for method, path in [
        ("POST", "/v1/ai-sdk/chat"),
        ("GET", "/v1/ai-sdk/chat/mine/stream"),
        ("POST", "/v1/ai-sdk/chat/mine/stop"),
    ]:
        refused = await secured.request(method, path, json=body if method == "POST" else None)
        assert refused.status == 401
        assert (await refused.json())["error"]["code"] == "unauthorized"
    assert await redis.keys("tr:*:job:*") == []
    mine = {"Authorization": f"Bearer {KEY}"}
    async with driver(
        "send",
        base(secured),
        chatId="mine",
        prompt="keyed\n#sim tokens=200 rate=80",
        headers=mine,
        progressChars=5,
    ) as node:
        await node.event("progress")
        other = {"Authorization": f"Bearer {OTHER_KEY}"}
        elsewhere = await secured.get("/v1/ai-sdk/chat/mine/stream", headers=other)
        assert elsewhere.status == 204  # another key's chat of the same id: none
        not_stopped = await secured.post("/v1/ai-sdk/chat/mine/stop", headers=other)
        assert (await not_stopped.json())["cancelled"] is False
        resumed = await run("reconnect", base(secured), chatId="mine", headers=mine)
        result = await node.result()
    job_id = job_of(result)
    expected = await upstream_text(http, upstream_url, job_id)
    assert result["text"] == resumed["text"] == expected


async def test_rate_limits_answer_429_with_retry_after(
    settings: Settings, redis: AnyRedis, worker: RunningWorker
) -> None:
    limited = settings.model_copy(update={"submit_rate_per_minute": 1})
    async with TestClient(TestServer(await create_app(limited, redis))) as client:
        body = {"id": "busy", "messages": USER}
        first = await client.post("/v1/ai-sdk/chat", json=body)
        assert first.status == 200
        assert first.headers["x-vercel-ai-ui-message-stream"] == "v1"
        assert (await first.text()).endswith("data: [DONE]\n\n")
        second = await client.post("/v1/ai-sdk/chat", json=body)
        assert second.status == 429
        assert (await second.json())["error"]["code"] == "rate_limited"
        assert int(second.headers["Retry-After"]) >= 1


def test_the_pinned_ai_version_is_the_one_the_docs_name() -> None:
    lock = json.loads((HERE / "package-lock.json").read_text("utf-8"))
    version = lock["packages"]["node_modules/ai"]["version"]
    docs = (ROOT / "docs" / "ai-sdk.md").read_text("utf-8")
    assert f"`ai` {version}" in docs
