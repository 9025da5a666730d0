"""The feed's direct writes speak the same chunked HTTP as aiohttp's own writer: a real
client reads one byte-exact body from a mix of both."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from service.gateway.api.events import EventStreamResponse
from service.gateway.fanout.direct_write import direct_sink, http_chunk


async def test_direct_and_awaited_writes_interleave_into_one_exact_body() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        response = EventStreamResponse(send_timeout=30.0)
        await response.prepare(request)
        await response.write(b"retry: 100\n\n")
        sink = direct_sink(response)
        assert sink is not None
        for n in range(50):
            assert sink.write(http_chunk(b"id: %d-0\ndata: {}\n\n" % n))
            await response.write(b": ping\n\n")
        return response

    app = web.Application()
    app.router.add_get("/", handler)
    async with (
        TestServer(app) as server,
        aiohttp.ClientSession() as http,
        http.get(server.make_url("/")) as response,
    ):
        body = await response.read()
    expected = b"retry: 100\n\n" + b"".join(
        b"id: %d-0\ndata: {}\n\n: ping\n\n" % n for n in range(50)
    )
    assert body == expected


async def test_the_stream_has_a_kernel_send_timeout_while_it_lasts() -> None:
    seen: list[int] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        sock = request.transport.get_extra_info("socket")
        option = (socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT)
        seen.append(sock.getsockopt(*option))
        response = EventStreamResponse(send_timeout=7.5)
        await response.prepare(request)
        seen.append(sock.getsockopt(*option))
        await response.write(b"retry: 100\n\n")
        await response.write_eof()
        seen.append(sock.getsockopt(*option))
        return response

    app = web.Application()
    app.router.add_get("/", handler)
    async with (
        TestServer(app) as server,
        aiohttp.ClientSession() as http,
        http.get(server.make_url("/")) as response,
    ):
        assert response.headers["Content-Type"] == "text/event-stream"
        assert response.headers["Cache-Control"] == "no-cache"
        assert response.headers["Transfer-Encoding"] == "chunked"
        assert await response.read() == b"retry: 100\n\n"
    # Set for the stream (unacknowledged data for 7.5 s drops the peer), then as it was.
    assert seen == [0, 7500, 0]


async def test_no_direct_writes_without_chunked_encoding() -> None:
    found: list[object] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_length = 5
        await response.prepare(request)
        await response.write(b"hello")
        found.append(direct_sink(response))
        return response

    app = web.Application()
    app.router.add_get("/", handler)
    async with (
        TestServer(app) as server,
        aiohttp.ClientSession() as http,
        http.get(server.make_url("/")) as response,
    ):
        assert await response.read() == b"hello"
    assert found == [None]


async def test_event_stream_response_is_aiohttp_sses_without_its_ping_task() -> None:
    """The events route's response: aiohttp-sse's headers, GET only, and ``TCP_USER_TIMEOUT``
    at the send timeout while it streams (restored after, for a kept-alive connection)."""
    timeouts: list[int] = []
    tasks: list[int] = []

    def user_timeout(request: web.Request) -> int:
        assert request.transport is not None
        sock = request.transport.get_extra_info("socket")
        return int(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT))

    async def handler(request: web.Request) -> web.StreamResponse:
        response = EventStreamResponse(send_timeout=7.5)
        timeouts.append(user_timeout(request))
        before = len(asyncio.all_tasks())
        await response.prepare(request)
        tasks.append(len(asyncio.all_tasks()) - before)
        timeouts.append(user_timeout(request))
        await response.write(b"retry: 100\n\n")
        await response.write_eof()
        timeouts.append(user_timeout(request))
        return response

    app = web.Application()
    app.router.add_get("/", handler)
    async with TestServer(app) as server, aiohttp.ClientSession() as http:
        async with http.get(server.make_url("/")) as response:
            assert await response.read() == b"retry: 100\n\n"
            assert response.headers["Content-Type"] == "text/event-stream"
            assert response.headers["Cache-Control"] == "no-cache"
            assert response.headers["Connection"] == "keep-alive"
            assert response.headers["X-Accel-Buffering"] == "no"
            assert response.headers["Transfer-Encoding"] == "chunked"
        async with http.head(server.make_url("/")) as response:
            assert response.status == 405
    assert timeouts[1] == 7500 and timeouts[0] == timeouts[2] != 7500
    assert tasks == [0]  # no task of its own per stream
