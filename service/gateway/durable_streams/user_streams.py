"""The streams clients create under ``/v1/stream/{name}``: create (PUT, forks included),
append and close (POST), delete, HEAD, and reads in the three modes."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web

from service.contract.events import StreamId
from service.contract.settings import Settings
from service.contract.store.redis_client import is_redis_failure
from service.gateway.durable_streams import json_mode
from service.gateway.durable_streams.cursor import response_cursor
from service.gateway.durable_streams.errors import StreamError
from service.gateway.durable_streams.offsets import (
    BadOffset,
    entry_id_text,
    format_offset,
    parse_offset,
)
from service.gateway.durable_streams.protocol import (
    PRODUCER_EPOCH,
    PRODUCER_EXPECTED_SEQ,
    PRODUCER_RECEIVED_SEQ,
    PRODUCER_SEQ,
    STREAM_CLOSED,
    STREAM_EXPIRES_AT,
    STREAM_FORK_OFFSET,
    STREAM_FORKED_FROM,
    STREAM_NEXT_OFFSET,
    STREAM_SEQ,
    STREAM_TTL,
    Expiry,
    Producer,
    closed_flag,
    creation_content_type,
    is_json,
    normalize_content_type,
    parse_expiry,
    parse_producer,
    parse_sub_offset,
)
from service.gateway.durable_streams.read_params import LONG_POLL, SSE, ReadParams, read_params
from service.gateway.durable_streams.responses import (
    NO_STORE,
    no_content,
    read_response,
    tail_response,
)
from service.gateway.durable_streams.sse import (
    CONNECTION_SECONDS,
    SseResponse,
    control_event,
    data_event,
)
from service.gateway.durable_streams.store import (
    Page,
    StreamMeta,
    StreamStore,
    data_key,
    new_generation,
)
from service.gateway.durable_streams.watch import StreamWatch

log = logging.getLogger(__name__)

PREFIX = "/v1/stream/"


def stream_name(path: str) -> str | None:
    """The name in a stream's path (``Stream-Forked-From`` names its source by path)."""
    if not path.startswith(PREFIX) or len(path) == len(PREFIX):
        return None
    return path[len(PREFIX) :]


def location(request: web.Request, name: str) -> str:
    """The stream's URL, for ``Location``."""
    return str(request.url.with_path(PREFIX + name, encoded=False).with_query(None))


@dataclass(frozen=True, slots=True)
class _Fork:
    """What a PUT with ``Stream-Forked-From`` asks for."""

    source: str
    offset: StreamId | None
    sub: int
    content_type: str | None  # None: the source's
    expiry: Expiry
    closed: bool


class UserStreams:
    """The handlers of client-created streams, on one gateway's Redis and settings."""

    def __init__(self, store: StreamStore, watch: StreamWatch, settings: Settings) -> None:
        self.store = store
        self.watch = watch
        self.settings = settings

    # -- PUT -------------------------------------------------------------------------------

    async def create(self, request: web.Request, name: str) -> web.StreamResponse:
        """Create the stream (a fork with ``Stream-Forked-From``), or confirm it exists."""
        headers = request.headers
        source = headers.get(STREAM_FORKED_FROM)
        fork = source is not None
        content_type = creation_content_type(request, fork=fork)
        expiry = parse_expiry(headers)
        closed = closed_flag(headers)
        sub = parse_sub_offset(headers, fork=fork)
        fork_offset: StreamId | None = None
        if STREAM_FORK_OFFSET in headers:
            try:
                fork_offset = parse_offset(headers[STREAM_FORK_OFFSET])
            except BadOffset as exc:
                raise StreamError(400, f"Stream-Fork-Offset: {exc}") from None
        if sub and fork_offset is None:
            raise StreamError(400, "Stream-Fork-Sub-Offset needs Stream-Fork-Offset")
        body = await request.read()
        if source is None:
            entries = self._initial_entries(content_type or "", body)
            config = _config(name, content_type or "", expiry, closed=closed)
            args: list[str | bytes] = [*config, "", "", "", "0", "create", *entries]
            reply = await self.store.create(name, args)
            return self._created(request, name, reply, content_type or "")
        asked = _Fork(source, fork_offset, sub, content_type, expiry, closed)
        return await self._fork(request, name, asked, body)

    async def _fork(
        self, request: web.Request, name: str, fork: _Fork, body: bytes
    ) -> web.StreamResponse:
        """Create a fork: confirm an existing one, else check the source, cut the sub-offset's
        prefix, create the fork, then take its reference on the source."""
        source_name = stream_name(fork.source)
        if source_name is None:
            raise StreamError(404, f"no source stream {fork.source!r} on this server")
        asked = entry_id_text(fork.offset) if fork.offset is not None else ""
        tail: list[str | bytes] = [source_name, "", asked, str(fork.sub), "probe"]
        config = _config(name, fork.content_type, fork.expiry, closed=fork.closed)
        probe = await self.store.create(name, [*config, *tail])
        if probe[0] != "absent":
            return self._created(request, name, probe, fork.content_type or "")
        origin = await self.store.source(source_name)
        media = normalize_content_type(origin.content_type)
        if fork.content_type is not None and normalize_content_type(fork.content_type) != media:
            raise StreamError(409, "the fork's content type differs from its source's")
        at = fork.offset if fork.offset is not None else origin.tail
        if at > origin.tail:
            raise StreamError(400, "Stream-Fork-Offset is past the source stream's end")
        entries: list[str | bytes] = [await self._split(origin, at, fork.sub)] if fork.sub else []
        entries += self._initial_entries(origin.content_type, body)
        expiry = _fork_expiry(fork.expiry, origin)
        config = _config(name, origin.content_type, expiry, closed=fork.closed)
        tail = [source_name, entry_id_text(at), asked, str(fork.sub), "create", *entries]
        reply = await self.store.create(name, [*config, *tail])
        if reply[0] == "created":
            await self.store.reference(source_name, name)
        return self._created(request, name, reply, origin.content_type)

    def _initial_entries(self, content_type: str, body: bytes) -> list[str | bytes]:
        if not body:
            return []
        if is_json(content_type):
            texts = json_mode.messages(body, creating=True)
            return [json_mode.entry(texts)] if texts else []
        return [body]

    async def _split(self, origin: StreamMeta, at: StreamId, sub: int) -> bytes:
        """The first ``sub`` bytes (messages, in JSON mode) of the source's append after
        ``at``: a sub-offset fork's first own entry."""
        data = await self.store.first_entry_after(origin, at)
        if data is None:
            raise StreamError(400, "Stream-Fork-Sub-Offset: no data after the fork offset")
        if is_json(origin.content_type):
            texts = json_mode.split_entry(data)
            if sub > len(texts):
                raise StreamError(400, "Stream-Fork-Sub-Offset is past the append's messages")
            return json_mode.entry(texts[:sub])
        if sub > len(data):
            raise StreamError(400, "Stream-Fork-Sub-Offset is past the append's bytes")
        return data[:sub]

    def _created(
        self, request: web.Request, name: str, reply: list[str], content_type: str
    ) -> web.Response:
        status = reply[0]
        if status == "conflict":
            raise StreamError(409, f"stream {name!r} exists with another configuration")
        if status == "blocked":
            raise StreamError(409, f"stream {name!r} was deleted while forks read it")
        tail, closed = reply[1], reply[2] == "1"
        headers = {
            "Content-Type": reply[3] if status == "exists" else content_type,
            STREAM_NEXT_OFFSET: format_offset(_entry_id(tail)),
        }
        if status == "created":
            headers["Location"] = location(request, name)
        if closed:
            headers[STREAM_CLOSED] = "true"
        return web.Response(status=201 if status == "created" else 200, headers=headers)

    # -- POST ------------------------------------------------------------------------------

    async def append(self, request: web.Request, name: str) -> web.StreamResponse:
        """Append (and/or close), fenced by ``ds_append.lua``."""
        close = closed_flag(request.headers)
        producer = parse_producer(request.headers)
        body = await request.read()
        if not body and not close:
            raise StreamError(400, "an append needs a body (or Stream-Closed: true)")
        content_type = ""
        if body:
            given = request.headers.get("Content-Type")
            if not given:
                raise StreamError(400, "an append needs a Content-Type")
            content_type = normalize_content_type(given)
            if is_json(content_type):
                body = json_mode.entry(json_mode.messages(body, creating=False))
        args: list[str | bytes] = [
            content_type,
            "1" if close else "",
            request.headers.get(STREAM_SEQ, ""),
            producer.id if producer else "",
            producer.epoch if producer else "",
            producer.seq if producer else "",
            body,
        ]
        return _appended(name, await self.store.append(name, args), producer, bool(body))

    # -- DELETE and HEAD ---------------------------------------------------------------------

    async def delete(self, name: str) -> web.StreamResponse:
        """Delete the stream (soft while forks read it)."""
        await self.store.delete(name)
        return web.Response(status=204)

    async def head(self, name: str) -> web.StreamResponse:
        """The stream's metadata; does not slide its TTL."""
        meta = await self.store.open(name, touch=False)
        tail = format_offset(meta.tail)
        headers = {
            "Content-Type": meta.content_type,
            STREAM_NEXT_OFFSET: tail,
            "Cache-Control": NO_STORE,
            "ETag": f'"{meta.generation}:-1:{tail}{":c" if meta.closed else ""}"',
        }
        if meta.closed:
            headers[STREAM_CLOSED] = "true"
        if meta.ttl is not None:
            headers[STREAM_TTL] = str(meta.ttl)
        if meta.expires_at is not None:
            headers[STREAM_EXPIRES_AT] = meta.expires_at
        return web.Response(status=200, headers=headers)

    # -- GET -------------------------------------------------------------------------------

    async def read(self, request: web.Request, name: str, *, private: bool) -> web.StreamResponse:
        """A catch-up, long-poll or SSE read."""
        params = read_params(request)
        meta = await self.store.open(name, touch=True)
        if params.live == SSE:
            return await self._sse(request, meta, params)
        if params.after is None and params.live is None:
            return tail_response(
                content_type=meta.content_type,
                empty=b"[]" if is_json(meta.content_type) else b"",
                next_offset=format_offset(meta.tail),
                closed=meta.closed,
            )
        after = meta.tail if params.after is None else params.after
        page = await self.store.read(meta, after)
        cursor = None
        if params.live == LONG_POLL:
            cursor = response_cursor(params.cursor)
            if not page.entries and not page.closed:
                page = await self._wait(meta, after, page)
            if not page.entries:
                return no_content(
                    next_offset=format_offset(page.next), closed=page.closed, cursor=cursor
                )
        return read_response(
            request,
            _body(meta, page),
            content_type=meta.content_type,
            etag_base=meta.generation,
            start=params.start,
            next_offset=format_offset(page.next),
            up_to_date=not page.more,
            closed=page.closed and not page.more,
            cursor=cursor,
            private=private,
        )

    async def _wait(self, meta: StreamMeta, after: StreamId, page: Page) -> Page:
        """Wait for data (or the closure) after ``after``, up to the long-poll timeout."""
        deadline = time.monotonic() + self.settings.durable_streams_long_poll_seconds
        while not page.entries and not page.closed:
            left = deadline - time.monotonic()
            if left <= 0 or self.watch.closing:
                break
            if await self.watch.wait(data_key(meta.name), page.next, left):
                page = await self.store.read(meta, after)
        return page

    async def _sse(
        self, request: web.Request, meta: StreamMeta, params: ReadParams
    ) -> web.StreamResponse:
        position = meta.tail if params.after is None else params.after
        sse = SseResponse(request, meta.content_type)
        await sse.open()
        ends = time.monotonic() + CONNECTION_SECONDS
        first = True
        try:
            while True:
                page = await self.store.read(meta, position)
                end = page.closed and not page.more
                if page.entries or first or end:
                    frames = data_event(_body(meta, page), text=sse.text) if page.entries else b""
                    frames += control_event(
                        format_offset(page.next),
                        cursor=response_cursor(params.cursor),
                        up_to_date=not page.more,
                        closed=end,
                    )
                    await sse.send(frames)
                    first = False
                position = page.next
                if end or time.monotonic() >= ends or self.watch.closing:
                    break
                if page.more:
                    continue
                left = min(self.settings.durable_streams_long_poll_seconds, ends - time.monotonic())
                if not await self.watch.wait(data_key(meta.name), position, max(left, 0.0)):
                    if self.watch.closing or time.monotonic() >= ends:
                        break
                    meta = await self.store.open(meta.name, touch=True)
                    await sse.send(
                        control_event(
                            format_offset(position),
                            cursor=response_cursor(params.cursor),
                            up_to_date=True,
                            closed=False,
                        )
                    )
        except (ConnectionResetError, StreamError):
            pass  # the client left, or the stream was deleted: the response ends
        except Exception as exc:
            if not is_redis_failure(exc):
                raise
            # The response has started: no error can follow. The client reconnects.
            log.warning("durable stream read ended by a redis error", extra={"error": repr(exc)})
        return sse.response


def _config(name: str, content_type: str | None, expiry: Expiry, *, closed: bool) -> list[str]:
    """The first arguments of ``ds_create.lua``: name, content type (as given, normalized;
    empty on a fork that inherits it), expiry, closure and a new incarnation id."""
    return [
        name,
        content_type or "",
        normalize_content_type(content_type),
        str(expiry.ttl) if expiry.ttl is not None else "",
        expiry.expires_at or "",
        str(expiry.deadline_ms) if expiry.deadline_ms is not None else "",
        "1" if closed else "",
        new_generation(),
    ]


def _entry_id(text: str) -> StreamId:
    ms, _, seq = text.partition("-")
    return int(ms), int(seq)


def _body(meta: StreamMeta, page: Page) -> bytes:
    if is_json(meta.content_type):
        return json_mode.array(page.entries)
    return b"".join(page.entries)


def _fork_expiry(asked: Expiry, origin: StreamMeta) -> Expiry:
    """protocol section 4.2: a fork's own TTL or Expires-At, else its source's."""
    if asked.ttl is not None or asked.expires_at is not None:
        return asked
    if origin.ttl is not None:
        return Expiry(ttl=origin.ttl)
    if origin.expires_at is not None:
        return Expiry(expires_at=origin.expires_at, deadline_ms=origin.deadline_ms)
    return Expiry()


def _appended(
    name: str, reply: list[str], producer: Producer | None, appended: bool
) -> web.Response:
    """The answer to ``ds_append.lua``'s reply."""
    status = reply[0]
    echo: Mapping[str, str] = (
        {PRODUCER_EPOCH: producer.epoch, PRODUCER_SEQ: producer.seq} if producer else {}
    )
    if status == "ok":
        headers = {STREAM_NEXT_OFFSET: format_offset(_entry_id(reply[1])), **echo}
        if reply[2] == "1":
            headers[STREAM_CLOSED] = "true"
        return web.Response(status=200 if producer and appended else 204, headers=headers)
    if status == "dup":
        assert producer is not None
        headers = {PRODUCER_EPOCH: producer.epoch, PRODUCER_SEQ: reply[1]}
        return web.Response(status=204, headers=headers)
    if status == "dup_closed":
        headers = {STREAM_NEXT_OFFSET: format_offset(_entry_id(reply[1])), STREAM_CLOSED: "true"}
        return web.Response(status=204, headers={**headers, **echo})
    if status == "closed":
        closed = {STREAM_CLOSED: "true", STREAM_NEXT_OFFSET: format_offset(_entry_id(reply[1]))}
        raise StreamError(409, f"stream {name!r} is closed", headers=closed)
    if status == "content_type":
        raise StreamError(409, "the Content-Type differs from the stream's")
    if status == "stale_epoch":
        raise StreamError(
            403, "a newer producer epoch writes this stream", headers={PRODUCER_EPOCH: reply[1]}
        )
    if status == "epoch_seq":
        raise StreamError(400, "a new producer epoch starts at Producer-Seq 0")
    if status == "gap":
        expected = str(int(reply[1]) + 1)
        raise StreamError(
            409,
            f"Producer-Seq {reply[2]} is not the next one ({expected})",
            headers={PRODUCER_EXPECTED_SEQ: expected, PRODUCER_RECEIVED_SEQ: reply[2]},
        )
    if status == "seq_conflict":
        raise StreamError(409, "Stream-Seq is not above the last one")
    if status == "gone":
        raise StreamError(410, f"stream {name!r} was deleted; its forks still read it")
    raise StreamError(404, f"no stream {name!r}")
