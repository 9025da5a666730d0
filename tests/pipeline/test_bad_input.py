"""Bad input gets a clear JSON error with a fitting 4xx, and reaches neither Redis nor the
upstream."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from service.contract.keys import job_record_key
from tests.jobs_api import submit, upstream_requests

# An edit's target (docs/protocol.md, "Edits"): line 1 column 1 to column 2 of "ab\ncd".
RANGE = {"start_line": 1, "start_column": 1, "end_line": 1, "end_column": 2}
WHOLE_LINE = {"start_line": 1, "start_column": 1, "end_line": 1, "end_column": 40_001}
TARGET = {"document_id": "doc-1", "version": 1, "range": RANGE, "base": "ab\ncd"}

BAD_SUBMITS: list[tuple[str, Any, dict[str, str], int, str]] = [
    ("not json", b"{nope", {"Content-Type": "application/json"}, 400, "invalid_json"),
    ("empty body", b"", {"Content-Type": "application/json"}, 400, "invalid_json"),
    ("json array", b"[1, 2]", {"Content-Type": "application/json"}, 400, "invalid_body"),
    ("no prompt", {"language": "python"}, {}, 400, "invalid_request"),
    ("empty prompt", {"prompt": "   "}, {}, 400, "invalid_request"),
    (
        "prompt and messages",
        {"prompt": "a", "messages": [{"role": "user", "content": "b"}]},
        {},
        400,
        "invalid_request",
    ),
    (
        "messages without user",
        {"messages": [{"role": "system", "content": "b"}]},
        {},
        400,
        "invalid_request",
    ),
    ("bad role", {"messages": [{"role": "robot", "content": "b"}]}, {}, 400, "invalid_request"),
    ("prompt wrong type", {"prompt": 42}, {}, 400, "invalid_request"),
    ("unknown field", {"prompt": "a", "stream": True}, {}, 400, "invalid_request"),
    ("unknown language", {"prompt": "a", "language": "cobol"}, {}, 400, "invalid_request"),
    ("temperature too high", {"prompt": "a", "temperature": 2.5}, {}, 400, "invalid_request"),
    ("temperature negative", {"prompt": "a", "temperature": -1}, {}, 400, "invalid_request"),
    ("max_tokens zero", {"prompt": "a", "max_tokens": 0}, {}, 400, "invalid_request"),
    ("max_tokens above limit", {"prompt": "a", "max_tokens": 10**9}, {}, 400, "invalid_request"),
    ("prompt too long", {"prompt": "x" * 40_000}, {}, 413, "prompt_too_large"),
    (
        "target range past the base",
        {"prompt": "a", "target": {**TARGET, "range": {**RANGE, "end_line": 3}}},
        {},
        400,
        "invalid_request",
    ),
    (
        "target range backwards",
        {"prompt": "a", "target": {**TARGET, "range": {**RANGE, "start_column": 3}}},
        {},
        400,
        "invalid_request",
    ),
    (
        "target with messages",
        {"messages": [{"role": "user", "content": "b"}], "target": TARGET},
        {},
        400,
        "invalid_request",
    ),
    (
        "target document id",
        {"prompt": "a", "target": {**TARGET, "document_id": "a b"}},
        {},
        400,
        "invalid_request",
    ),
    (
        "target selection too long",
        {"prompt": "a", "target": {**TARGET, "base": "x" * 40_000, "range": WHOLE_LINE}},
        {},
        413,
        "prompt_too_large",
    ),
    (
        "body too large",
        b'{"prompt": "' + b"x" * 300_000 + b'"}',
        {"Content-Type": "application/json"},
        413,
        "request_entity_too_large",
    ),
    (
        "form body",
        b"prompt=a",
        {"Content-Type": "application/x-www-form-urlencoded"},
        400,
        "unsupported_media_type",
    ),
    (
        "idempotency key too long",
        {"prompt": "a"},
        {"Idempotency-Key": "k" * 300},
        400,
        "invalid_idempotency_key",
    ),
]


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [case[1:] for case in BAD_SUBMITS],
    ids=[case[0] for case in BAD_SUBMITS],
)
async def test_bad_submit_is_a_json_error_and_writes_nothing(
    gateway: TestClient[Any, Any],
    redis: Redis,
    http: aiohttp.ClientSession,
    upstream_url: str,
    body: Any,
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    keys_before = set(await redis.keys("*"))
    if isinstance(body, bytes):
        response = await gateway.post("/v1/jobs", data=body, headers=headers)
    else:
        response = await gateway.post("/v1/jobs", json=body, headers=headers)
    assert response.status == status
    error = (await response.json())["error"]
    assert error["code"] == code
    assert error["message"]
    assert set(await redis.keys("*")) == keys_before
    assert await upstream_requests(http, upstream_url) == []


async def test_unknown_model_is_rejected_when_models_are_configured(
    redis: Redis, settings: Any, http: aiohttp.ClientSession
) -> None:
    from aiohttp.test_utils import TestServer

    from service.gateway.app import create_app

    restricted = settings.model_copy(update={"models": ["tokenrelay-sim"]})
    async with TestClient(TestServer(await create_app(restricted, redis))) as client:
        response = await client.post("/v1/jobs", json={"prompt": "a", "model": "gpt-x"})
        assert response.status == 400
        assert "unknown model" in (await response.json())["error"]["message"]


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/v1/jobs/AAAAAAAAAAAAAAAAAAAAAA", 404, "job_not_found"),
        ("/v1/jobs/AAAAAAAAAAAAAAAAAAAAAA/events", 404, "job_not_found"),
        ("/v1/jobs/%7Bbad%7D", 404, "not_found"),
        ("/v1/jobs/bad.id", 404, "job_not_found"),
        ("/v1/jobs/x/events", 404, "job_not_found"),
        ("/v1/nothing", 404, "not_found"),
    ],
)
async def test_unknown_job_or_path_is_404_json(
    gateway: TestClient[Any, Any], path: str, status: int, code: str
) -> None:
    response = await gateway.get(path)
    assert response.status == status
    assert (await response.json())["error"]["code"] == code


async def test_wrong_method_is_405_json(gateway: TestClient[Any, Any]) -> None:
    response = await gateway.put("/v1/jobs")
    assert response.status == 405
    assert (await response.json())["error"]["code"] == "method_not_allowed"


async def test_a_token_for_one_job_does_not_open_another(gateway: TestClient[Any, Any]) -> None:
    first = await submit(gateway, "a")
    second = await submit(gateway, "b")
    token = first["viewer_token"]
    response = await gateway.get(f"/v1/jobs/{second['id']}/events", params={"token": token})
    assert response.status == 403
    assert (await response.json())["error"]["code"] == "invalid_token"


async def test_idempotency_key_returns_the_same_job(
    gateway: TestClient[Any, Any], redis: Redis
) -> None:
    headers = {"Idempotency-Key": "order-17"}
    first = await gateway.post("/v1/jobs", json={"prompt": "a"}, headers=headers)
    second = await gateway.post("/v1/jobs", json={"prompt": "a"}, headers=headers)
    assert first.status == second.status == 202
    assert (await first.json())["id"] == (await second.json())["id"]
    assert second.headers["Idempotent-Replayed"] == "true"
    assert await redis.exists(job_record_key((await first.json())["id"])) == 1
    conflict = await gateway.post("/v1/jobs", json={"prompt": "other"}, headers=headers)
    assert conflict.status == 409
    assert (await conflict.json())["error"]["code"] == "idempotency_conflict"
