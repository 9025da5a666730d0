"""Bad OpenAI requests get OpenAI's error object with a fitting 4xx and reach neither Redis nor
the upstream; auth is that of the native API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr
from redis.asyncio import Redis

from service.contract.settings import Settings
from service.gateway.app import create_app
from tests.clients.openai_sdk import sdk
from tests.conftest import RunningWorker
from tests.jobs_api import upstream_requests

KEY = "sk-openai-test"
USER = [{"role": "user", "content": "a"}]

BAD_CHATS: list[tuple[str, Any, int, str, str | None]] = [
    ("not json", b"{nope", 400, "invalid_json", None),
    ("json array", b"[1]", 400, "invalid_type", None),
    ("no messages", {"model": "m"}, 400, "missing_required_parameter", "messages"),
    ("empty messages", {"messages": []}, 400, "invalid_value", "messages"),
    (
        "no user message",
        {"messages": [{"role": "system", "content": "x"}]},
        400,
        "invalid_request",
        None,
    ),
    (
        "tool role",
        {"messages": [{"role": "tool", "content": "x"}]},
        400,
        "invalid_value",
        "messages[0].role",
    ),
    (
        "image part",
        {
            "messages": [
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}
            ]
        },
        400,
        "invalid_value",
        "messages[0].content[0].type",
    ),
    (
        "tools",
        {"messages": USER, "tools": [{"type": "function"}]},
        400,
        "unsupported_parameter",
        "tools",
    ),
    ("logprobs", {"messages": USER, "logprobs": True}, 400, "unsupported_parameter", "logprobs"),
    ("n of 2", {"messages": USER, "n": 2}, 400, "invalid_value", "n"),
    ("unknown field", {"messages": USER, "colour": "red"}, 400, "unknown_parameter", "colour"),
    (
        "stream_options without stream",
        {"messages": USER, "stream_options": {"include_usage": True}},
        400,
        "invalid_value",
        "stream_options",
    ),
    ("temperature too high", {"messages": USER, "temperature": 3}, 400, "invalid_request", None),
    (
        "five stop sequences",
        {"messages": USER, "stop": list("abcde")},
        400,
        "invalid_request",
        None,
    ),
    ("unknown language", {"messages": USER, "language": "cobol"}, 400, "invalid_request", None),
    (
        "prompt too long",
        {"messages": [{"role": "user", "content": "x" * 40_000}]},
        413,
        "prompt_too_large",
        None,
    ),
    (
        "body too large",
        b'{"messages": "' + b"x" * 300_000 + b'"}',
        413,
        "request_entity_too_large",
        None,
    ),
]

BAD_RESPONSES: list[tuple[str, Any, int, str, str | None]] = [
    ("no input", {"model": "m", "background": True}, 400, "missing_required_parameter", "input"),
    (
        "tools",
        {"input": "a", "tools": [{"type": "web_search"}]},
        400,
        "unsupported_parameter",
        "tools",
    ),
    (
        "previous response",
        {"input": "a", "previous_response_id": "resp_x"},
        400,
        "unsupported_parameter",
        "previous_response_id",
    ),
    ("store false", {"input": "a", "store": False}, 400, "invalid_value", "store"),
    (
        "json output",
        {"input": "a", "text": {"format": {"type": "json_object"}}},
        400,
        "invalid_value",
        "text.format.type",
    ),
    (
        "max tokens above limit",
        {"input": "a", "max_output_tokens": 10**9},
        400,
        "invalid_request",
        None,
    ),
]


async def _assert_refused(
    gateway: TestClient[Any, Any],
    redis: Redis,
    http: aiohttp.ClientSession,
    upstream_url: str,
    path: str,
    body: Any,
    status: int,
    code: str,
    param: str | None,
) -> None:
    keys_before = set(await redis.keys("*"))
    if isinstance(body, bytes):
        response = await gateway.post(path, data=body, headers={"Content-Type": "application/json"})
    else:
        response = await gateway.post(path, json=body)
    assert response.status == status
    error = (await response.json())["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["code"], error["param"]) == (code, param)
    assert error["type"] == "invalid_request_error"
    assert set(await redis.keys("*")) == keys_before
    assert await upstream_requests(http, upstream_url) == []


@pytest.mark.parametrize(
    ("body", "status", "code", "param"), [c[1:] for c in BAD_CHATS], ids=[c[0] for c in BAD_CHATS]
)
async def test_bad_chat_request_is_an_openai_error_and_writes_nothing(
    gateway: TestClient[Any, Any],
    redis: Redis,
    http: aiohttp.ClientSession,
    upstream_url: str,
    body: Any,
    status: int,
    code: str,
    param: str | None,
) -> None:
    await _assert_refused(
        gateway, redis, http, upstream_url, "/v1/chat/completions", body, status, code, param
    )


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [c[1:] for c in BAD_RESPONSES],
    ids=[c[0] for c in BAD_RESPONSES],
)
async def test_bad_responses_request_is_an_openai_error_and_writes_nothing(
    gateway: TestClient[Any, Any],
    redis: Redis,
    http: aiohttp.ClientSession,
    upstream_url: str,
    body: Any,
    status: int,
    code: str,
    param: str | None,
) -> None:
    await _assert_refused(
        gateway, redis, http, upstream_url, "/v1/responses", body, status, code, param
    )


async def test_unknown_response_is_404_and_a_bad_position_400(
    gateway: TestClient[Any, Any],
) -> None:
    async with sdk(gateway) as client:
        with pytest.raises(openai.NotFoundError):
            await client.responses.retrieve("resp_nosuchjob12345")
        with pytest.raises(openai.NotFoundError):
            await client.responses.retrieve("chatcmpl-x")
    response = await gateway.get("/v1/responses/resp_nosuchjob12345?stream=true&starting_after=x")
    assert response.status == 400
    assert (await response.json())["error"]["param"] == "starting_after"


@pytest.fixture
async def secured(settings: Settings, redis: Redis) -> AsyncIterator[TestClient[Any, Any]]:
    locked = settings.model_copy(update={"api_keys": [SecretStr(KEY)]})
    async with TestClient(TestServer(await create_app(locked, redis))) as client:
        yield client


async def test_with_auth_on_the_sdk_needs_a_valid_key(
    secured: TestClient[Any, Any], worker: RunningWorker, redis: Redis
) -> None:
    async with sdk(secured, api_key="sk-wrong") as client:
        with pytest.raises(openai.AuthenticationError) as raised:
            await client.chat.completions.create(model="m", messages=USER)  # type: ignore[arg-type]
        assert raised.value.code == "invalid_api_key"
        with pytest.raises(openai.AuthenticationError):
            await client.responses.create(input="a", background=True)
    assert await redis.keys("tr:{*}:job") == []
    async with sdk(secured, api_key=KEY) as client:
        created = await client.responses.create(input="a\n#sim tokens=3", background=True)
        assert (await client.responses.retrieve(created.id)).id == created.id
    anonymous = await secured.get(f"/v1/responses/{created.id}")
    assert anonymous.status == 403
    token = anonymous.headers.get("X-TokenRelay-Viewer-Token")
    assert token is None
