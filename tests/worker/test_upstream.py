"""The upstream client against real HTTP servers that write chosen bytes, chunks and pauses."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from pydantic import SecretStr
from pytest_aiohttp import AiohttpServer

from service.contract.errors import UpstreamError
from service.contract.settings import Settings
from worker.upstream import (
    ChatRequest,
    Finished,
    TextDelta,
    UpstreamClient,
    UpstreamEvent,
    UpstreamTimeouts,
    UsageReport,
)

API_KEY = "sk-test-0123456789abcdef"
REQUEST = ChatRequest(model="m-1", messages=[{"role": "user", "content": "hi"}])
QUICK = UpstreamTimeouts(connect=2.0, first_token=3.0, idle=3.0, total=10.0)
USAGE = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


@dataclass(frozen=True)
class Pause:
    """The server waits this long before its next step."""

    seconds: float


CUT = "cut"  # the server drops the TCP connection without ending the response

Step = bytes | Pause | str


@dataclass
class FakeUpstream:
    """What one purpose-built server saw."""

    url: str = ""
    requests: list[tuple[dict[str, str], dict[str, Any]]] = field(default_factory=list)
    disconnected: asyncio.Event = field(default_factory=asyncio.Event)


Serve = Callable[..., Awaitable[FakeUpstream]]


def chunk(**fields: Any) -> bytes:
    """One OpenAI-style ``data:`` event."""
    return (
        b"data: "
        + orjson.dumps({"id": "c1", "object": "chat.completion.chunk", **fields})
        + b"\n\n"
    )


def content(text: str | None, **delta: Any) -> bytes:
    return chunk(choices=[{"index": 0, "delta": {"content": text, **delta}, "finish_reason": None}])


def finish(reason: str = "stop") -> bytes:
    return chunk(choices=[{"index": 0, "delta": {}, "finish_reason": reason}])


DONE = b"data: [DONE]\n\n"


@pytest.fixture
def serve(aiohttp_server: AiohttpServer) -> Serve:
    """Start a server whose one endpoint answers with the given steps."""

    async def start(
        steps: list[Step],
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
        content_type: str = "text/event-stream",
    ) -> FakeUpstream:
        upstream = FakeUpstream()

        async def handler(request: web.Request) -> web.StreamResponse:
            upstream.requests.append((dict(request.headers), await request.json()))
            try:
                response = web.StreamResponse(
                    status=status, headers={"Content-Type": content_type, **(headers or {})}
                )
                await response.prepare(request)
                for step in steps:
                    if isinstance(step, Pause):
                        await asyncio.sleep(step.seconds)
                    elif step == CUT:
                        assert request.transport is not None
                        request.transport.abort()
                        return response
                    else:
                        assert isinstance(step, bytes)
                        await response.write(step)
                return response
            except asyncio.CancelledError:
                # The test server cancels a handler when its client goes away.
                upstream.disconnected.set()
                raise

        app = web.Application()
        app.router.add_post("/v1/chat/completions", handler)
        server = await aiohttp_server(app)
        upstream.url = str(server.make_url("/v1"))
        return upstream

    return start


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


def client_for(
    session: aiohttp.ClientSession, url: str, timeouts: UpstreamTimeouts = QUICK
) -> UpstreamClient:
    return UpstreamClient(session, base_url=url, api_key=SecretStr(API_KEY), timeouts=timeouts)


async def collect(client: UpstreamClient, request: ChatRequest = REQUEST) -> list[UpstreamEvent]:
    async with contextlib.aclosing(client.stream_chat(request)) as stream:
        return [event async for event in stream]


async def fail(client: UpstreamClient) -> tuple[list[UpstreamEvent], UpstreamError]:
    """The events that came before the stream failed, and the failure."""
    events: list[UpstreamEvent] = []
    with pytest.raises(UpstreamError) as caught:
        async with contextlib.aclosing(client.stream_chat(REQUEST)) as stream:
            async for event in stream:
                events.append(event)
    return events, caught.value


# --- request -----------------------------------------------------------------------------


async def test_request_is_a_streaming_chat_completion_with_key_and_extra_headers(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    upstream = await serve([finish(), DONE])
    request = ChatRequest(
        model="m-2",
        messages=[{"role": "user", "content": "x"}],
        temperature=0.2,
        max_tokens=64,
        stop=["\n\n"],
    )
    client = client_for(session, upstream.url)
    async with contextlib.aclosing(
        client.stream_chat(request, headers={"X-TokenRelay-Job": "j1", "X-TokenRelay-Attempt": "2"})
    ) as stream:
        assert [event async for event in stream] == [Finished("stop")]
    headers, body = upstream.requests[0]
    assert headers["Authorization"] == f"Bearer {API_KEY}"
    assert headers["X-TokenRelay-Job"] == "j1"
    assert headers["X-TokenRelay-Attempt"] == "2"
    assert body == {
        "model": "m-2",
        "messages": [{"role": "user", "content": "x"}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0.2,
        "max_tokens": 64,
        "stop": ["\n\n"],
    }


async def test_optional_fields_and_authorization_are_sent_only_when_set(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    upstream = await serve([finish(), DONE])
    client = UpstreamClient(session, base_url=upstream.url + "/", api_key=None, timeouts=QUICK)
    assert await collect(client) == [Finished("stop")]
    headers, body = upstream.requests[0]
    assert "Authorization" not in headers
    assert set(body) == {"model", "messages", "stream", "stream_options"}


def test_timeouts_come_from_settings() -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        upstream_connect_timeout=1.5,
        upstream_first_token_timeout=2.5,
        upstream_idle_timeout=3.5,
        upstream_total_timeout=4.5,
    )
    assert UpstreamTimeouts.from_settings(settings) == UpstreamTimeouts(1.5, 2.5, 3.5, 4.5)


# --- the stream --------------------------------------------------------------------------


async def test_normal_stream_yields_text_then_usage_then_finish(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    upstream = await serve(
        [
            content("", role="assistant"),
            content("def "),
            content("f():"),
            finish("stop"),
            chunk(choices=[], usage=USAGE),
            DONE,
        ]
    )
    assert await collect(client_for(session, upstream.url)) == [
        TextDelta("def "),
        TextDelta("f():"),
        UsageReport(USAGE),
        Finished("stop"),
    ]


async def test_role_null_content_and_reasoning_are_not_text(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    upstream = await serve(
        [
            content(None, role="assistant"),
            content(None, reasoning_content="thinking…"),
            content("", reasoning_content="more"),
            chunk(choices=[{"index": 0, "delta": {}, "logprobs": None, "extra": [1]}], x=1),
            content("x"),
            finish("length"),
            DONE,
        ]
    )
    assert await collect(client_for(session, upstream.url)) == [
        TextDelta("x"),
        Finished("length"),
    ]


async def test_comment_lines_are_ignored(serve: Serve, session: aiohttp.ClientSession) -> None:
    upstream = await serve(
        [b": OPENROUTER PROCESSING\n\n", content("a"), b":\n: ping\n", content("b"), finish(), DONE]
    )
    assert await collect(client_for(session, upstream.url)) == [
        TextDelta("a"),
        TextDelta("b"),
        Finished("stop"),
    ]


async def test_data_without_space_and_crlf_line_ends(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    def crlf(event: bytes) -> bytes:
        return event.replace(b"data: ", b"data:").replace(b"\n", b"\r\n")

    # The second event's "data:" and its value arrive in separate writes.
    rest = content("c")[len(b"data: ") :].replace(b"\n", b"\r\n")
    upstream = await serve([crlf(content("a\r\nb")), b"data:", Pause(0.02), rest, crlf(DONE)])
    assert await collect(client_for(session, upstream.url)) == [
        TextDelta("a\r\nb"),
        TextDelta("c"),
        Finished("stop"),
    ]


async def test_cr_and_lf_of_one_line_end_in_separate_writes(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    raw = content("a").replace(b"\n", b"\r\n") + DONE
    cr = raw.index(b"\r") + 1
    upstream = await serve([raw[:cr], Pause(0.02), raw[cr:]])
    assert await collect(client_for(session, upstream.url)) == [TextDelta("a"), Finished("stop")]


async def test_utf8_character_split_across_writes(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    raw = content("é😀✓") + finish() + DONE
    first = raw.index("😀".encode()) + 2
    upstream = await serve(
        [raw[:first], Pause(0.02), raw[first : first + 1], Pause(0.02), raw[first + 1 :]]
    )
    assert await collect(client_for(session, upstream.url)) == [
        TextDelta("é😀✓"),
        Finished("stop"),
    ]


async def test_usage_in_every_chunk_is_reported_once_with_the_last_value(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    early = {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
    upstream = await serve(
        [
            chunk(choices=[{"index": 0, "delta": {"content": "a"}}], usage=early),
            chunk(choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}], usage=USAGE),
            DONE,
        ]
    )
    assert await collect(client_for(session, upstream.url)) == [
        TextDelta("a"),
        UsageReport(USAGE),
        Finished("stop"),
    ]


async def test_done_without_finish_reason_is_a_normal_end(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    upstream = await serve([content("a"), DONE])
    assert await collect(client_for(session, upstream.url)) == [TextDelta("a"), Finished("stop")]


async def test_finish_without_done_at_eof_is_finished(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    upstream = await serve([content("a"), finish("length")])
    assert await collect(client_for(session, upstream.url)) == [
        TextDelta("a"),
        Finished("length"),
    ]


async def test_stall_after_finish_without_done_is_finished(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    upstream = await serve([content("a"), finish(), Pause(5.0)])
    timeouts = UpstreamTimeouts(connect=2.0, first_token=3.0, idle=0.2, total=10.0)
    assert await collect(client_for(session, upstream.url, timeouts)) == [
        TextDelta("a"),
        Finished("stop"),
    ]


@pytest.mark.parametrize("ending", [[], [CUT]], ids=["clean-eof", "connection-dropped"])
async def test_end_before_done_and_finish_is_stream_cut(
    serve: Serve, session: aiohttp.ClientSession, ending: list[Step]
) -> None:
    upstream = await serve([content("a"), b'data: {"cho', *ending])
    events, error = await fail(client_for(session, upstream.url))
    assert events == [TextDelta("a")]
    assert (error.code, error.retryable) == ("stream_cut", True)


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        ({"message": "Overloaded", "type": "overloaded_error"}, True),
        ({"message": "The server had an error", "type": "server_error", "code": None}, True),
        ({"message": "Provider returned error", "code": 502}, True),
        ({"message": "Too many tokens", "type": "invalid_request_error"}, False),
        ("model overloaded, try later", True),
    ],
    ids=["overloaded", "server-error", "numeric-502", "invalid-request", "bare-string"],
)
async def test_error_object_in_stream(
    serve: Serve, session: aiohttp.ClientSession, error: object, retryable: bool
) -> None:
    upstream = await serve([content("a"), b"data: " + orjson.dumps({"error": error}) + b"\n\n"])
    events, raised = await fail(client_for(session, upstream.url))
    assert events == [TextDelta("a")]
    assert (raised.code, raised.retryable) == ("upstream_error", retryable)


@pytest.mark.parametrize(
    "bad",
    [b"data: {not json\n\n", b"data: [1, 2]\n\n", b"data: \xff\xfe\n\n"],
    ids=["not-json", "not-an-object", "invalid-utf8"],
)
async def test_malformed_stream_is_protocol_error(
    serve: Serve, session: aiohttp.ClientSession, bad: bytes
) -> None:
    # The pause keeps the good event in an earlier read than the bad bytes.
    upstream = await serve([content("a"), Pause(0.02), bad, DONE])
    events, error = await fail(client_for(session, upstream.url))
    assert events == [TextDelta("a")]
    assert (error.code, error.retryable) == ("protocol_error", True)


async def test_json_answer_instead_of_stream_is_upstream_error(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    body = orjson.dumps({"error": {"message": "streaming not supported"}})
    upstream = await serve([body], content_type="application/json")
    _, error = await fail(client_for(session, upstream.url))
    assert error.code == "upstream_error"
    assert "streaming not supported" in error.message


# --- HTTP errors -------------------------------------------------------------------------


async def test_429_with_retry_after_seconds(serve: Serve, session: aiohttp.ClientSession) -> None:
    upstream = await serve(
        [b'{"error": {"message": "slow down"}}'],
        status=429,
        headers={"Retry-After": "7"},
        content_type="application/json",
    )
    _, error = await fail(client_for(session, upstream.url))
    assert (error.code, error.retryable, error.retry_after) == ("rate_limited", True, 7.0)
    assert "slow down" in error.message


async def test_429_with_retry_after_http_date(serve: Serve, session: aiohttp.ClientSession) -> None:
    when = datetime.now(UTC) + timedelta(seconds=30)
    upstream = await serve(
        [b""], status=429, headers={"Retry-After": format_datetime(when, usegmt=True)}
    )
    _, error = await fail(client_for(session, upstream.url))
    assert error.code == "rate_limited"
    assert error.retry_after is not None
    assert 27.0 <= error.retry_after <= 30.0


async def test_retry_after_ms_is_preferred(serve: Serve, session: aiohttp.ClientSession) -> None:
    upstream = await serve(
        [b""], status=429, headers={"Retry-After": "7", "retry-after-ms": "1500"}
    )
    _, error = await fail(client_for(session, upstream.url))
    assert error.retry_after == 1.5


async def test_500_is_retryable_and_keeps_retry_after(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    upstream = await serve([b"internal error"], status=500, headers={"Retry-After": "2"})
    _, error = await fail(client_for(session, upstream.url))
    assert (error.code, error.retryable, error.retry_after) == ("upstream_unavailable", True, 2.0)


@pytest.mark.parametrize(
    ("status", "code", "retryable"),
    [
        (400, "upstream_bad_request", False),
        (401, "upstream_auth", False),
        (403, "upstream_auth", False),
        (404, "upstream_not_found", False),
        (422, "upstream_bad_request", False),
        (408, "upstream_unavailable", True),
        (409, "upstream_unavailable", True),
        (502, "upstream_unavailable", True),
        (503, "upstream_unavailable", True),
    ],
)
async def test_http_status_maps_to_code_and_retryable(
    serve: Serve, session: aiohttp.ClientSession, status: int, code: str, retryable: bool
) -> None:
    upstream = await serve([b'{"error": {"message": "nope"}}'], status=status)
    _, error = await fail(client_for(session, upstream.url))
    assert (error.code, error.retryable) == (code, retryable)
    assert f"HTTP {status}" in error.message
    assert "nope" in error.message


async def test_401_is_not_retryable_and_never_shows_the_key(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    body = {"error": {"message": f"Incorrect API key provided: {API_KEY}.", "type": "auth"}}
    upstream = await serve([orjson.dumps(body)], status=401, content_type="application/json")
    _, error = await fail(client_for(session, upstream.url))
    assert (error.code, error.retryable) == ("upstream_auth", False)
    assert "Incorrect API key provided" in error.message
    assert API_KEY not in error.message
    assert API_KEY not in str(error)
    assert API_KEY not in repr(error.args)


async def test_long_provider_message_is_truncated(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    body = orjson.dumps({"detail": "x" * 5000})
    upstream = await serve([body], status=422, content_type="application/json")
    _, error = await fail(client_for(session, upstream.url))
    assert "xxx" in error.message
    assert len(error.message) < 400


async def test_connect_refused_is_upstream_connect(session: aiohttp.ClientSession) -> None:
    # A bound socket that does not listen refuses connections, and holds the port.
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
        _, error = await fail(client_for(session, f"http://127.0.0.1:{port}/v1"))
    assert (error.code, error.retryable) == ("upstream_connect", True)


async def test_answer_that_is_not_http_is_protocol_error(session: aiohttp.ClientSession) -> None:
    async def not_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HELLO THERE\r\n\r\n")
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(not_http, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        _, error = await fail(client_for(session, f"http://127.0.0.1:{port}/v1"))
    assert (error.code, error.retryable) == ("protocol_error", True)


# --- timeouts ----------------------------------------------------------------------------


async def test_stall_mid_stream_is_idle_timeout(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    upstream = await serve([content("a"), Pause(5.0), content("b"), DONE])
    timeouts = UpstreamTimeouts(connect=2.0, first_token=3.0, idle=0.2, total=10.0)
    events, error = await fail(client_for(session, upstream.url, timeouts))
    assert events == [TextDelta("a")]
    assert (error.code, error.retryable) == ("idle_timeout", True)
    await asyncio.wait_for(upstream.disconnected.wait(), 2.0)


async def test_no_token_in_time_is_first_token_timeout(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    # Keepalive comments and a role chunk are bytes, but not a first token.
    pings: list[Step] = [b": ping\n\n", Pause(0.05)] * 20
    upstream = await serve([content(None, role="assistant"), *pings, content("late"), DONE])
    timeouts = UpstreamTimeouts(connect=2.0, first_token=0.3, idle=0.1, total=10.0)
    events, error = await fail(client_for(session, upstream.url, timeouts))
    assert events == []
    assert (error.code, error.retryable) == ("first_token_timeout", True)


async def test_slow_response_headers_are_first_token_timeout(
    aiohttp_server: AiohttpServer, session: aiohttp.ClientSession
) -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5.0)
        return web.Response()

    app = web.Application()
    app.router.add_post("/v1/chat/completions", slow)
    server = await aiohttp_server(app)
    timeouts = UpstreamTimeouts(connect=2.0, first_token=0.2, idle=5.0, total=10.0)
    _, error = await fail(client_for(session, str(server.make_url("/v1")), timeouts))
    assert (error.code, error.retryable) == ("first_token_timeout", True)


async def test_whole_call_longer_than_total_is_total_timeout(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    trickle: list[Step] = [content("a"), Pause(0.05)] * 40
    upstream = await serve([*trickle, DONE])
    timeouts = UpstreamTimeouts(connect=2.0, first_token=3.0, idle=3.0, total=0.3)
    events, error = await fail(client_for(session, upstream.url, timeouts))
    assert 0 < len(events) < 40
    assert (error.code, error.retryable) == ("total_timeout", False)


# --- the consumer stops ------------------------------------------------------------------


async def test_early_aclose_drops_the_connection(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    upstream = await serve([content("a"), Pause(5.0), content("b"), DONE])
    stream = client_for(session, upstream.url).stream_chat(REQUEST)
    assert await anext(stream) == TextDelta("a")
    await stream.aclose()
    await asyncio.wait_for(upstream.disconnected.wait(), 2.0)


async def test_cancelling_the_consumer_drops_the_connection(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    upstream = await serve([content("a"), Pause(5.0), content("b"), DONE])
    client = client_for(session, upstream.url)
    first = asyncio.Event()

    async def consume() -> None:
        async with contextlib.aclosing(client.stream_chat(REQUEST)) as stream:
            async for _ in stream:
                first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 2.0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(upstream.disconnected.wait(), 2.0)
