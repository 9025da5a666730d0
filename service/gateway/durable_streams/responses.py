"""The headers of catch-up and long-poll answers (protocol sections 5.6, 5.7, 10):
the next offset, ``Stream-Up-To-Date``, ``Stream-Closed`` at the end of a closed stream, the
cursor of live reads, and an ETag (with ``If-None-Match`` answered ``304``)."""

from __future__ import annotations

from aiohttp import web

from service.gateway.durable_streams.errors import secured
from service.gateway.durable_streams.protocol import (
    STREAM_CLOSED,
    STREAM_CURSOR,
    STREAM_NEXT_OFFSET,
    STREAM_UP_TO_DATE,
)

NO_STORE = "no-store"


def cache_control(*, private: bool) -> str:
    """Catch-up answers may be cached a minute (a chunk never changes); privately when the
    stream is not for everyone."""
    scope = "private" if private else "public"
    return f"{scope}, max-age=60, stale-while-revalidate=300"


def read_response(
    request: web.Request,
    body: bytes,
    *,
    content_type: str,
    etag_base: str,
    start: str,
    next_offset: str,
    up_to_date: bool,
    closed: bool,
    cursor: str | None,
    private: bool,
) -> web.Response:
    """A ``200`` read answer, or ``304`` when the client holds the same ETag. The ETag names
    the stream's incarnation, the range and the closure, so it changes with any of them."""
    etag = f'"{etag_base}:{start}:{next_offset}{":c" if closed else ""}"'
    if request.headers.get("If-None-Match") == etag:
        return secured(web.Response(status=304, headers={"ETag": etag}))  # type: ignore[return-value]
    headers = {
        "Content-Type": content_type,
        STREAM_NEXT_OFFSET: next_offset,
        "ETag": etag,
        "Cache-Control": cache_control(private=private),
    }
    if up_to_date:
        headers[STREAM_UP_TO_DATE] = "true"
    if closed:
        headers[STREAM_CLOSED] = "true"
    if cursor is not None:
        headers[STREAM_CURSOR] = cursor
    return web.Response(status=200, body=body, headers=headers)


def tail_response(
    *, content_type: str, empty: bytes, next_offset: str, closed: bool
) -> web.Response:
    """``offset=now`` in catch-up mode: nothing, the tail offset, never cached."""
    headers = {
        "Content-Type": content_type,
        STREAM_NEXT_OFFSET: next_offset,
        STREAM_UP_TO_DATE: "true",
        "Cache-Control": NO_STORE,
    }
    if closed:
        headers[STREAM_CLOSED] = "true"
    return web.Response(status=200, body=empty, headers=headers)


def no_content(*, next_offset: str, closed: bool, cursor: str | None) -> web.Response:
    """A long-poll that found nothing (or the end of a closed stream): ``204``."""
    headers = {
        STREAM_NEXT_OFFSET: next_offset,
        STREAM_UP_TO_DATE: "true",
        "Cache-Control": NO_STORE,
    }
    if closed:
        headers[STREAM_CLOSED] = "true"
    elif cursor is not None:
        headers[STREAM_CURSOR] = cursor
    return web.Response(status=204, headers=headers)
