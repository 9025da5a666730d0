"""Security: keys to submit and cancel, viewer tokens to read, origins, rate limits, and no
way for token text to inject an SSE field."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from ipaddress import ip_network
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr
from redis.asyncio import Redis

from service.contract.settings import Settings
from service.contract.sse_decoder import SSEDecoder
from service.gateway.app import create_app
from service.gateway.fanout.frames import Entry, encode
from service.gateway.state import STATE
from tests.jobs_api import submit

KEY = "sk-test-key-1"
ADMIN_KEY = "sk-admin-key-1"


@pytest.fixture
async def secured(settings: Settings, redis: Redis) -> AsyncIterator[TestClient[Any, Any]]:
    locked = settings.model_copy(
        update={
            "api_keys": [SecretStr(KEY), SecretStr("sk-other")],
            "admin_api_keys": [SecretStr(ADMIN_KEY)],
            "cors_origins": ["https://editor.example"],
        }
    )
    async with TestClient(TestServer(await create_app(locked, redis))) as client:
        yield client


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _job(client: TestClient[Any, Any]) -> dict[str, Any]:
    response = await client.post("/v1/jobs", json={"prompt": "a"}, headers=bearer(KEY))
    assert response.status == 202
    body: dict[str, Any] = await response.json()
    return body


AUTH_CASES: list[tuple[str, str, str, dict[str, str], int, str]] = [
    ("submit without key", "POST", "/v1/jobs", {}, 401, "unauthorized"),
    ("submit with wrong key", "POST", "/v1/jobs", bearer("sk-wrong"), 401, "invalid_api_key"),
    (
        "submit with basic auth",
        "POST",
        "/v1/jobs",
        {"Authorization": "Basic eDp5"},
        401,
        "unauthorized",
    ),
    ("cancel without key", "DELETE", "/v1/jobs/{id}", {}, 401, "unauthorized"),
    (
        "cancel with viewer token only",
        "DELETE",
        "/v1/jobs/{id}?token={token}",
        {},
        401,
        "unauthorized",
    ),
    (
        "cancel with another submitter's key",
        "DELETE",
        "/v1/jobs/{id}",
        bearer("sk-other"),
        403,
        "cancel_forbidden",
    ),
    (
        "cancel with a key and the viewer token",
        "DELETE",
        "/v1/jobs/{id}?cancel_token={token}",
        bearer("sk-other"),
        403,
        "cancel_forbidden",
    ),
    ("read without token", "GET", "/v1/jobs/{id}", {}, 403, "viewer_token_required"),
    ("events without token", "GET", "/v1/jobs/{id}/events", {}, 403, "viewer_token_required"),
    (
        "events with garbage token",
        "GET",
        "/v1/jobs/{id}/events?token=abc",
        {},
        403,
        "invalid_token",
    ),
    (
        "events with wrong key",
        "GET",
        "/v1/jobs/{id}/events",
        bearer("sk-wrong"),
        403,
        "viewer_token_required",
    ),
    (
        "forbidden origin",
        "POST",
        "/v1/jobs",
        {"Origin": "https://evil.example", **bearer(KEY)},
        403,
        "origin_not_allowed",
    ),
    (
        "forbidden origin reading",
        "GET",
        "/v1/jobs/{id}?token={token}",
        {"Origin": "https://evil.example"},
        403,
        "origin_not_allowed",
    ),
]


@pytest.mark.parametrize(
    ("method", "path", "headers", "status", "code"),
    [case[1:] for case in AUTH_CASES],
    ids=[case[0] for case in AUTH_CASES],
)
async def test_access_is_refused_with_a_json_error(
    secured: TestClient[Any, Any],
    method: str,
    path: str,
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    job = await _job(secured)
    url = path.format(id=job["id"], token=job["viewer_token"])
    response = await secured.request(method, url, headers=headers, json={"prompt": "a"})
    assert response.status == status
    assert (await response.json())["error"]["code"] == code


async def test_valid_key_and_token_open_what_they_should(secured: TestClient[Any, Any]) -> None:
    job = await _job(secured)
    by_token = await secured.get(f"/v1/jobs/{job['id']}", params={"token": job["viewer_token"]})
    assert by_token.status == 200
    by_key = await secured.get(f"/v1/jobs/{job['id']}", headers=bearer("sk-other"))
    assert by_key.status == 200
    cancel = await secured.delete(f"/v1/jobs/{job['id']}", headers=bearer(KEY))
    assert cancel.status == 200


@pytest.mark.parametrize(
    "how", ["submitting_key", "admin_key", "cancel_token_header", "cancel_token_query"]
)
async def test_a_job_is_cancelled_by_its_submitter_its_cancel_token_or_an_admin(
    secured: TestClient[Any, Any], how: str
) -> None:
    job = await _job(secured)
    url = f"/v1/jobs/{job['id']}"
    requests = {
        "submitting_key": lambda: secured.delete(url, headers=bearer(KEY)),
        "admin_key": lambda: secured.delete(url, headers=bearer(ADMIN_KEY)),
        "cancel_token_header": lambda: secured.delete(
            url, headers={"X-Cancel-Token": job["cancel_token"]}
        ),
        "cancel_token_query": lambda: secured.delete(
            url, params={"cancel_token": job["cancel_token"]}
        ),
    }
    response = await requests[how]()
    assert response.status == 200, await response.text()
    record = await secured.get(url, headers=bearer(KEY))
    assert (await record.json())["status"] == "cancelled"


async def test_with_auth_off_a_viewer_token_cannot_cancel_but_the_cancel_token_can(
    gateway: TestClient[Any, Any],
) -> None:
    job = await submit(gateway, "a")
    url = f"/v1/jobs/{job['id']}"
    for refused in (
        await gateway.delete(url),
        await gateway.delete(url, params={"token": job["viewer_token"]}),
        await gateway.delete(url, headers={"X-Cancel-Token": job["viewer_token"]}),
    ):
        assert refused.status == 403
        assert (await refused.json())["error"]["code"] == "cancel_forbidden"
    assert job["cancel_token"] != job["viewer_token"]
    assert (
        await gateway.delete(url, headers={"X-Cancel-Token": job["cancel_token"]})
    ).status == 200


async def test_an_expired_viewer_token_is_refused(secured: TestClient[Any, Any]) -> None:
    job = await _job(secured)
    tokens = secured.app[STATE].tokens
    old = tokens.issue(job["id"], now=time.time() - 10 * 86_400)
    response = await secured.get(f"/v1/jobs/{job['id']}/events", params={"token": old})
    assert response.status == 403
    assert (await response.json())["error"]["code"] == "token_expired"


async def test_a_token_cannot_be_stretched_by_editing_its_expiry(
    secured: TestClient[Any, Any],
) -> None:
    job = await _job(secured)
    expires, _, signature = job["viewer_token"].partition(".")
    forged = f"{int(expires) + 10**6}.{signature}"
    response = await secured.get(f"/v1/jobs/{job['id']}", params={"token": forged})
    assert response.status == 403


async def test_allowed_origin_gets_cors_headers_and_preflight(
    secured: TestClient[Any, Any],
) -> None:
    origin = {"Origin": "https://editor.example"}
    preflight = await secured.options(
        "/v1/jobs", headers={**origin, "Access-Control-Request-Method": "POST"}
    )
    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://editor.example"
    response = await secured.post(
        "/v1/jobs", json={"prompt": "a"}, headers={**origin, **bearer(KEY)}
    )
    assert response.status == 202
    assert response.headers["Access-Control-Allow-Origin"] == "https://editor.example"


async def test_no_cross_origin_access_by_default(
    gateway: TestClient[Any, Any],
) -> None:
    response = await gateway.post(
        "/v1/jobs", json={"prompt": "a"}, headers={"Origin": "https://any.example"}
    )
    assert response.status == 403
    same = await gateway.post(
        "/v1/jobs",
        json={"prompt": "a"},
        headers={"Origin": str(gateway.make_url("/")).rstrip("/")},
    )
    assert same.status == 202


async def test_submits_over_the_rate_limit_get_429_with_retry_after(
    settings: Settings, redis: Redis
) -> None:
    limited = settings.model_copy(update={"submit_rate_per_minute": 3})
    async with TestClient(TestServer(await create_app(limited, redis))) as client:
        statuses = [(await client.post("/v1/jobs", json={"prompt": "a"})).status for _ in range(3)]
        assert statuses == [202, 202, 202]
        response = await client.post("/v1/jobs", json={"prompt": "a"})
        assert response.status == 429
        assert 1 <= int(response.headers["Retry-After"]) <= 61
        assert (await response.json())["error"]["code"] == "rate_limited"


async def _submit_statuses(client: TestClient[Any, Any], forwarded: list[str]) -> list[int]:
    return [
        (
            await client.post(
                "/v1/jobs", json={"prompt": "a"}, headers={"X-Forwarded-For": address}
            )
        ).status
        for address in forwarded
    ]


async def test_a_forged_x_forwarded_for_from_an_untrusted_peer_keeps_the_peers_bucket(
    settings: Settings, redis: Redis
) -> None:
    # The test client's peer is 127.0.0.1; the trusted proxies are elsewhere.
    limited = settings.model_copy(
        update={
            "submit_rate_per_minute": 2,
            "trusted_proxies": [ip_network("10.0.0.0/8")],
        }
    )
    async with TestClient(TestServer(await create_app(limited, redis))) as client:
        statuses = await _submit_statuses(client, ["203.0.113.1", "203.0.113.2", "203.0.113.3"])
    assert statuses == [202, 202, 429]


async def test_x_forwarded_for_from_a_trusted_proxy_picks_the_bucket_and_cannot_be_forged(
    settings: Settings, redis: Redis
) -> None:
    trusted = [ip_network("127.0.0.1/32"), ip_network("10.0.0.0/8")]
    limited = settings.model_copy(update={"submit_rate_per_minute": 2, "trusted_proxies": trusted})
    async with TestClient(TestServer(await create_app(limited, redis))) as client:
        # Three clients behind the proxy: a bucket each.
        assert await _submit_statuses(client, ["198.51.100.1", "198.51.100.2", "198.51.100.3"]) == [
            202,
            202,
            202,
        ]
        # One client sends its own X-Forwarded-For to dodge the limit: the proxy (and an inner
        # trusted hop) appended its real address, the rightmost untrusted one, which is used.
        forged = [f"192.0.2.{n}, 198.51.100.9, 10.1.1.1" for n in range(3)]
        assert await _submit_statuses(client, forged) == [202, 202, 429]
        # Another client through the same two hops keeps its own bucket.
        assert await _submit_statuses(client, ["198.51.100.8, 10.1.1.1"]) == [202]


async def test_open_streams_per_client_are_bounded(
    settings: Settings, redis: Redis, http: aiohttp.ClientSession
) -> None:
    limited = settings.model_copy(update={"max_streams_per_client": 2})
    async with TestClient(TestServer(await create_app(limited, redis))) as client:
        job = await (await client.post("/v1/jobs", json={"prompt": "a"})).json()
        url = client.make_url(job["events_url"])
        first = await http.get(url)
        second = await http.get(url)
        third = await http.get(url)
        assert (first.status, second.status, third.status) == (200, 200, 429)
        assert (await third.json())["error"]["code"] == "rate_limited"
        first.close()
        second.close()


@pytest.mark.parametrize(
    "text",
    [
        "\r",
        "\n\nid: 999-0\nevent: done\ndata: {}\n\n",
        "\x00",
        "a\r\nb\rc\n",
        "\u2028\u0085",
        "data: x",
        "é中🚀",
    ],
)
def test_token_text_cannot_inject_an_sse_field(text: str) -> None:
    entries = [
        Entry((1, 0), "token", orjson.dumps({"text": text}), text),
        Entry((2, 0), "status", b'{"status":"running","attempt":1}'),
    ]
    events = SSEDecoder().feed(encode(entries))
    assert [(e.event, e.id) for e in events] == [("token", "1-0"), ("status", "2-0")]
    assert orjson.loads(events[0].data)["text"] == text


def test_the_gateway_runs_aiohttp_c_http_parser() -> None:
    from aiohttp import http_parser

    assert http_parser.HttpRequestParser is http_parser.HttpRequestParserC
