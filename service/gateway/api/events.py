"""``GET /v1/jobs/{id}/events``: the job's events as Server-Sent Events, resumable."""

from __future__ import annotations

import logging
import socket
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter

from service.contract.errors import BadRequest, Unavailable
from service.contract.events import ZERO_ID, StreamId, parse_stream_id
from service.contract.keys import job_record_key
from service.contract.store.job_reader import missing_job
from service.contract.store.redis_client import is_redis_failure
from service.contract.store.scripts import as_text
from service.gateway.access_control import client_address
from service.gateway.api.jobs import job_id_from
from service.gateway.auth import require_viewer
from service.gateway.fanout.direct_write import direct_sink
from service.gateway.fanout.frames import retry_frame
from service.gateway.fanout.viewer_stream import stream_to_viewer
from service.gateway.metrics import GatewayMetrics, ViewerMeter
from service.gateway.presence import VIEWER_COUNTS
from service.gateway.state import STATE, GatewayState

log = logging.getLogger(__name__)

routes = web.RouteTableDef()

_TCP_USER_TIMEOUT = getattr(socket, "TCP_USER_TIMEOUT", None)


class EventStreamResponse(web.StreamResponse):
    """An SSE response as aiohttp-sse's ``EventSourceResponse`` makes it (its headers, GET only,
    the kernel told to drop a peer that leaves data unacknowledged for ``send_timeout``),
    without its ping task.

    Written here rather than taken from aiohttp-sse: its ``prepare`` starts a task per stream
    for a ping on a fixed timer, which this gateway parked (the hub's sweeper asks for a ping
    after a quiet spell instead). Parked, it still cost every idle viewer a task, two
    coroutines, a future and a timer: about 2 KB of the gateway's 21.5 KB per viewer.
    """

    def __init__(self, send_timeout: float) -> None:
        super().__init__(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "Connection": "keep-alive",
                "X-Accel-Buffering": "no",
            }
        )
        self._send_timeout = send_timeout
        self._user_timeout_socket: socket.socket | None = None
        self._saved_user_timeout = 0

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        if request.method != "GET":
            raise web.HTTPMethodNotAllowed(request.method, ["GET"])
        if not self.prepared:
            self._set_user_timeout(request)
        return await super().prepare(request)

    async def write_eof(self, data: bytes = b"") -> None:
        await super().write_eof(data)
        sock, self._user_timeout_socket = self._user_timeout_socket, None
        if sock is not None and _TCP_USER_TIMEOUT is not None and sock.fileno() >= 0:
            sock.setsockopt(socket.IPPROTO_TCP, _TCP_USER_TIMEOUT, self._saved_user_timeout)

    def _set_user_timeout(self, request: web.BaseRequest) -> None:
        """``TCP_USER_TIMEOUT`` (Linux): the kernel aborts the connection once data it sent
        stays unacknowledged for ``send_timeout`` (a hung peer that never fills the socket's
        buffer is never caught by the sweeper's stuck-write check). Restored at the end, for a
        kept-alive connection's next request."""
        transport = request.transport
        if _TCP_USER_TIMEOUT is None or transport is None:
            return
        sock = transport.get_extra_info("socket")
        if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
            return
        self._saved_user_timeout = sock.getsockopt(socket.IPPROTO_TCP, _TCP_USER_TIMEOUT)
        sock.setsockopt(socket.IPPROTO_TCP, _TCP_USER_TIMEOUT, int(self._send_timeout * 1000))
        self._user_timeout_socket = sock


def resume_position(request: web.Request) -> tuple[StreamId, str | None]:
    """Where the client resumes: ``Last-Event-ID`` header, else ``?last_event_id=``."""
    for source, value in (
        ("header", request.headers.get("Last-Event-ID")),
        ("query", request.query.get("last_event_id")),
    ):
        if value:
            try:
                return parse_stream_id(value.strip()), source
            except ValueError:
                raise BadRequest(
                    f"Last-Event-ID {value[:64]!r} is not an event id of this service "
                    "(expected <ms>-<seq>)",
                    code="invalid_last_event_id",
                ) from None
    return ZERO_ID, None


async def job_state(state: GatewayState, job_id: str) -> tuple[Any, Any]:
    """The job record's ``status`` and ``terminal_id``, read after this call began (requests
    for one job arriving together, a reconnect storm, share the read: ``SharedReads``)."""
    key = job_record_key(job_id)

    async def fetch() -> list[Any]:
        return await state.redis.hmget(key, "status", "terminal_id")

    status, terminal_id = await state.shared_reads.read(("status", key), fetch)
    return status, terminal_id


@routes.get("/v1/jobs/{job_id}/events")
async def events(request: web.Request) -> web.StreamResponse:
    """Replay after the client's position, then follow live until the terminal event.

    The stream runs in this coroutine and ``stream_to_viewer``'s, nothing deeper while a
    viewer waits: beyond aiohttp's own connection, an idle viewer's coroutine frames (and the
    closures and context managers they hold) were most of what it cost the gateway.
    """
    state = request.app[STATE]
    job_id = job_id_from(request)
    require_viewer(request, state.settings, state.tokens, job_id)
    position, source = resume_position(request)
    if state.shutting_down:
        raise Unavailable("the gateway is shutting down; reconnect", code="shutting_down")
    address = client_address(request, state.settings)
    await state.limiter.check("stream", f"addr:{address}", state.settings.stream_rate_per_minute)
    state.stream_slots.take(address)
    try:
        terminal = await _terminal_of(request, job_id, source)
        if terminal is not None and position >= terminal:
            state.metrics.no_content.inc()
            return web.Response(status=204)

        response = EventStreamResponse(state.settings.send_timeout_seconds)
        await response.prepare(request)
        # aiohttp arms a keep-alive timer (keepalive_timeout, an hour) when a connection opens
        # and again after each response; while a request runs it can only fire and do nothing.
        # Stopped for the stream (a timer handle, a libuv timer and a context per viewer); the
        # connection stays keep-alive and the timer is armed again once the stream ends.
        request.protocol.keep_alive(True)
        end = _ViewerEnd(request, response, state.metrics)
        viewer_counts = request.app[VIEWER_COUNTS]
        viewer_counts.join(job_id)
        state.metrics.viewers.inc()
        reason = "client_gone"
        try:
            await end.write(retry_frame(state.settings.sse_retry_ms))
            outcome = await stream_to_viewer(
                state.redis,
                state.hub,
                job_id,
                position,
                end,
                sink=direct_sink(response),  # once the headers are out, with the first write
                terminal_id=terminal,
            )
            reason = outcome.reason
        except ConnectionResetError:
            reason = "send_timeout" if end.stalled else "client_gone"
        except Exception as exc:
            if not is_redis_failure(exc):
                raise
            # The response has started: no error body can follow. End the stream; the client
            # reconnects and resumes once Redis answers again.
            reason = "redis_error"
            log.warning(
                "stream ended by a redis error", extra={"job_id": job_id, "error": repr(exc)}
            )
        finally:
            viewer_counts.leave(job_id)
            state.metrics.viewers.dec()
            state.metrics.child(state.metrics.streams_ended, reason).inc()
            end.finished()
        log.debug("viewer stream ended", extra={"job_id": job_id, "reason": reason})
        return response
    finally:
        state.stream_slots.give_back(address)


async def _terminal_of(request: web.Request, job_id: str, source: str | None) -> StreamId | None:
    """The job's terminal entry, None while it runs; ``job_not_found`` for no such job."""
    state = request.app[STATE]
    status, terminal_id = await job_state(state, job_id)
    if status is None:
        raise await missing_job(state.redis, state.settings, job_id)
    if source is not None:
        state.metrics.child(state.metrics.resumes, source).inc()
    return parse_stream_id(as_text(terminal_id)) if terminal_id is not None else None


class _ViewerEnd(ViewerMeter):
    """The client's end of a stream (``ViewerEnd``), as ``stream_to_viewer`` writes to it:
    every write of its task counted (it is the viewer's meter; the feed's direct writes are
    counted per batch by ``GatewayMetrics.direct_writes``), and an abort
    that remembers it was a stall. One small object rather than closures and a meter apart:
    each object and function kept per viewer is memory per viewer."""

    __slots__ = ("request", "response", "stalled")

    def __init__(
        self, request: web.Request, response: web.StreamResponse, metrics: GatewayMetrics
    ) -> None:
        super().__init__(metrics)
        self.request = request
        self.response = response
        self.stalled = False

    async def write(self, data: bytes) -> None:
        """Write to the socket; no timer per write (the hub's sweeper aborts a write stuck
        past the send timeout)."""
        await self.response.write(data)
        self.wrote(data)

    def abort(self) -> None:
        """Drop the connection (the sweeper, for a write stuck too long)."""
        self.stalled = True
        transport = self.request.transport
        if transport is not None:
            transport.abort()
