"""Every tokenrelay job read as a Durable Stream of its text (read-only, ``text/plain``):
``/v1/stream/jobs/{id}``.

An offset is the id of the job's stream entry it follows, so it is the same on every gateway;
the bytes after it are the ``token`` texts of the later entries. A job's terminal event
closes the stream (``Stream-Closed``), whichever it is (``done``, ``failed``, ``cancelled``).

A ``reset`` (a retried attempt starts over) cannot be appended to an append-only stream, so
it is retention: the abandoned attempt's text is dropped from the stream's start, ``-1`` reads
the current attempt, and an offset before the reset answers ``410 Gone`` (protocol section 5.6:
"before the earliest retained position"). A reader that gets 410 discards its text and reads
again from ``-1``; a live SSE read ends at the reset, so its reconnect gets the 410.

Readers share the job's feed with the SSE viewers (``service/gateway/fanout/``): they join it
with ``FeedHub.subscribe``, replay with ``replay_pages`` and follow with ``live_entries``, so
one Redis reader serves every reader of a job on a gateway.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from service.contract.events import RESET, TERMINAL, TOKEN, ZERO_ID, StreamId, parse_stream_id
from service.contract.keys import job_events_key, job_record_key
from service.contract.store.job_reader import missing_job
from service.contract.store.redis_client import is_redis_failure
from service.contract.store.scripts import as_text
from service.gateway.durable_streams.cursor import response_cursor
from service.gateway.durable_streams.errors import StreamError
from service.gateway.durable_streams.offsets import format_offset, parse_entry_id
from service.gateway.durable_streams.protocol import STREAM_CLOSED, STREAM_NEXT_OFFSET
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
from service.gateway.fanout.follow import live_entries
from service.gateway.fanout.frames import Entry
from service.gateway.fanout.hub import Subscription
from service.gateway.fanout.replay import replay_pages
from service.gateway.presence import VIEWER_COUNTS
from service.gateway.state import GatewayState

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; charset=utf-8"
JOBS_PREFIX = "jobs/"


class Restarted(StreamError):
    """The offset is in an attempt a ``reset`` abandoned: 410, read again from ``-1``."""

    def __init__(self, job_id: str) -> None:
        super().__init__(
            410,
            f"job {job_id!r} restarted (a retried attempt): its earlier text is gone; read it "
            "again from offset -1",
            code="job_restarted",
        )


@dataclass(slots=True)
class JobText:
    """The text of a run of a job's entries after ``last``, as a Durable Stream reader gets
    it: token texts; ``reset`` set when an attempt restarted; ``closed`` at the end."""

    last: StreamId
    parts: list[str] = field(default_factory=list)
    closed: bool = False
    reset: bool = False

    def add(self, entries: list[Entry], *, may_restart: bool) -> None:
        """Take entries in order; a reset clears the text when the reader has none of the
        abandoned attempt (``may_restart``), and otherwise stops here."""
        for entry in entries:
            if entry.kind == RESET:
                if not may_restart:
                    self.reset = True
                    return
                self.parts.clear()
            elif entry.kind == TOKEN:
                self.parts.append(entry.text)
            elif entry.kind in TERMINAL:
                self.closed = True
            self.last = entry.id

    @property
    def body(self) -> bytes:
        return "".join(self.parts).encode("utf-8")


class JobStreams:
    """The read-only Durable Streams of jobs, on one gateway's state."""

    def __init__(self, state: GatewayState) -> None:
        self._state = state

    async def _terminal(self, job_id: str) -> StreamId | None:
        """The job's terminal entry (None while it runs); 404, or 410 once it expired."""
        state = self._state
        status, terminal_id = await state.redis.hmget(
            job_record_key(job_id), "status", "terminal_id"
        )
        if status is None:
            raise await missing_job(state.redis, state.settings, job_id)
        return parse_stream_id(as_text(terminal_id)) if terminal_id is not None else None

    async def _tail(self, job_id: str) -> StreamId:
        newest: list[Any] = list(
            await self._state.redis.xrevrange(job_events_key(job_id), count=1) or []
        )
        return parse_entry_id(newest[0][0]) if newest else ZERO_ID

    async def head(self, job_id: str) -> web.StreamResponse:
        """The job stream's tail and closure."""
        terminal = await self._terminal(job_id)
        headers = {
            "Content-Type": CONTENT_TYPE,
            STREAM_NEXT_OFFSET: format_offset(await self._tail(job_id)),
            "Cache-Control": NO_STORE,
        }
        if terminal is not None:
            headers[STREAM_CLOSED] = "true"
        return web.Response(status=200, headers=headers)

    async def read(self, request: web.Request, job_id: str) -> web.StreamResponse:
        """A catch-up, long-poll or SSE read of the job's text."""
        params = read_params(request)
        terminal = await self._terminal(job_id)
        if params.after is None and params.live is None:
            return tail_response(
                content_type=CONTENT_TYPE,
                empty=b"",
                next_offset=format_offset(await self._tail(job_id)),
                closed=terminal is not None,
            )
        state = self._state
        # A reader counts as a viewer of the job (its on_abandon policy) while it reads.
        with request.app[VIEWER_COUNTS].watching(job_id):
            subscription = await state.hub.subscribe(job_id, terminal)
            try:
                after = subscription.cursor if params.after is None else params.after
                text = await self._replay(subscription, job_id, after, params)
                if params.live == SSE:
                    return await self._sse(request, subscription, job_id, text, params)
                cursor = None
                if params.live == LONG_POLL:
                    cursor = response_cursor(params.cursor)
                    if not text.parts and not text.closed:
                        text = await self._wait(subscription, job_id, text, params)
                    if not text.parts:
                        return no_content(
                            next_offset=format_offset(text.last), closed=text.closed, cursor=cursor
                        )
                return read_response(
                    request,
                    text.body,
                    content_type=CONTENT_TYPE,
                    etag_base=f"job-{job_id}",
                    start=params.start,
                    next_offset=format_offset(text.last),
                    up_to_date=True,
                    closed=text.closed,
                    cursor=cursor,
                    private=True,
                )
            finally:
                state.hub.unsubscribe(subscription)

    async def _replay(
        self, subscription: Subscription, job_id: str, after: StreamId, params: ReadParams
    ) -> JobText:
        """The text from ``after`` up to the feed's cursor (replayed from its memory or
        Redis); 410 when an attempt restarted after ``after``."""
        text = JobText(last=after)
        if subscription.ended and subscription.cursor <= after:
            text.closed = True
        async for entries in replay_pages(
            self._state.redis, subscription.feed, after, subscription.cursor
        ):
            text.add(entries, may_restart=params.from_start)
            if text.reset:
                raise Restarted(job_id)
        return text

    async def _wait(
        self, subscription: Subscription, job_id: str, text: JobText, params: ReadParams
    ) -> JobText:
        """Long-poll: the feed's next entries until there is text, the end, or the timeout."""
        timeout = self._state.settings.durable_streams_long_poll_seconds
        deadline = time.monotonic() + timeout
        position = max(text.last, subscription.cursor)
        async for entries in live_entries(subscription.viewer, position, timeout):
            if not entries:
                break
            text.add(entries, may_restart=params.from_start)
            if text.reset:
                raise Restarted(job_id)
            if text.parts or text.closed or time.monotonic() >= deadline:
                break
        return text

    async def _sse(
        self,
        request: web.Request,
        subscription: Subscription,
        job_id: str,
        text: JobText,
        params: ReadParams,
    ) -> web.StreamResponse:
        settings = self._state.settings
        sse = SseResponse(request, CONTENT_TYPE)
        await sse.open()
        ends = time.monotonic() + CONNECTION_SECONDS
        sent_text = bool(text.parts)
        try:
            await sse.send(_frames(text, params, up_to_date=True))
            if text.closed:
                return sse.response
            position = max(text.last, subscription.cursor)
            feed = live_entries(
                subscription.viewer, position, settings.durable_streams_long_poll_seconds
            )
            async for entries in feed:
                if entries:
                    text = JobText(last=position)
                    text.add(entries, may_restart=params.from_start and not sent_text)
                    if text.reset:
                        break  # the reconnect gets 410 (see the module's docstring)
                    sent_text = sent_text or bool(text.parts)
                    up_to_date = not subscription.viewer.batches
                    await sse.send(_frames(text, params, up_to_date=up_to_date))
                    position = text.last
                    if text.closed:
                        break
                else:
                    await sse.send(_frames(JobText(last=position), params, up_to_date=True))
                if time.monotonic() >= ends or self._state.shutting_down:
                    break
        except ConnectionResetError:
            pass  # the client left
        except Exception as exc:
            if not is_redis_failure(exc):
                raise
            # The response has started: no error can follow. The client reconnects.
            extra = {"job_id": job_id, "error": repr(exc)}
            log.warning("job stream read ended by a redis error", extra=extra)
        return sse.response


def _frames(text: JobText, params: ReadParams, *, up_to_date: bool) -> bytes:
    """A data event for the text (if any) and its control event."""
    frames = data_event(text.body, text=True) if text.parts else b""
    return frames + control_event(
        format_offset(text.last),
        cursor=response_cursor(params.cursor),
        up_to_date=up_to_date,
        closed=text.closed,
    )
