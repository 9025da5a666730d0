"""Sending a planned completion: as an SSE stream, or as one object; and striking faults.

A client that goes away shows up as a cancelled handler (``handler_cancellation``)
or, failing that, as ``ConnectionResetError`` from the next write. Server shutdown
sets ``SimState.closing``, which ends every pause and stall at once.
"""

from __future__ import annotations

import asyncio

import orjson
from aiohttp import web

from simulator.faults import FaultKind
from simulator.plan import Plan
from simulator.requestlog import RequestRecord, Status
from simulator.state import SimState
from simulator.wire import SSE_DONE, SSE_KEEPALIVE, Completion, sse_data, usage

_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class ServerClosing(Exception):
    """The server began shutting down while a response was under way."""


async def send_stream(
    request: web.Request, plan: Plan, completion: Completion, state: SimState, record: RequestRecord
) -> web.StreamResponse:
    """Stream the completion chunk by chunk, as OpenAI does with ``stream: true``."""
    response = web.StreamResponse(headers={**_SSE_HEADERS, "x-request-id": completion.id})
    response.content_type = "text/event-stream"
    response.charset = "utf-8"
    await response.prepare(request)
    record.http_status = response.status
    try:
        await response.write(sse_data(completion.role_chunk()))
        if not await _send_content(response, plan, completion, state, record):
            await strike(request, plan.fault, state, record)
            return response
        await response.write(sse_data(completion.finish_chunk(plan.finish_reason)))
        if completion.include_usage:
            used = usage(plan.prompt_tokens, record.chunks_sent)
            await response.write(sse_data(completion.usage_chunk(used)))
        await response.write(SSE_DONE)
    except ConnectionResetError:
        record.finish(Status.CLIENT_DISCONNECTED, error="client went away mid-stream")
        return response
    except ServerClosing:
        record.finish(Status.FAILED, error="server shutting down")
        _close(request)
        return response
    record.finish(Status.COMPLETED, http_status=200, finish_reason=plan.finish_reason)
    return response


async def send_whole(
    request: web.Request, plan: Plan, completion: Completion, state: SimState, record: RequestRecord
) -> web.StreamResponse:
    """Answer with one ``chat.completion`` once the whole text would have been generated."""
    generated = plan.tokens if plan.strike_at is None else plan.tokens[: plan.strike_at]
    try:
        await pause(state.closing, len(generated) / plan.rate)
    except ServerClosing:
        record.finish(Status.FAILED, error="server shutting down")
        _close(request)
        return web.Response()
    if plan.strike_at is not None:
        await strike(request, plan.fault, state, record)
        return web.Response()
    text = "".join(plan.tokens)
    record.sent(text)
    record.finish(Status.COMPLETED, http_status=200, finish_reason=plan.finish_reason)
    body = completion.message(text, plan.finish_reason, usage(plan.prompt_tokens, len(plan.tokens)))
    return web.Response(
        body=orjson.dumps(body),
        content_type="application/json",
        headers={"x-request-id": completion.id},
    )


async def strike(
    request: web.Request, fault: FaultKind, state: SimState, record: RequestRecord
) -> None:
    """Cut the connection now, or stall: hold it silent until the client leaves."""
    if fault is FaultKind.STALL:
        try:
            await pause(state.closing, state.config.stall_seconds)
            record.finish(Status.FAILED, error="stall timed out")
        except ServerClosing:
            record.finish(Status.FAILED, error="server shutting down")
    else:
        record.finish(Status.FAILED, error="connection cut by fault")
    _close(request)


async def pause(closing: asyncio.Event, delay: float) -> None:
    """Wait ``delay`` seconds (at least one loop turn); raise ServerClosing on shutdown."""
    if closing.is_set():
        raise ServerClosing
    if delay <= 0:
        # Even unpaced, let cancellation and other connections in between chunks.
        await asyncio.sleep(0)
        return
    try:
        async with asyncio.timeout(delay):
            await closing.wait()
    except TimeoutError:
        return
    raise ServerClosing


async def _send_content(
    response: web.StreamResponse,
    plan: Plan,
    completion: Completion,
    state: SimState,
    record: RequestRecord,
) -> bool:
    """Send the content chunks at the plan's pace; False when a cut or stall must strike."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    keepalive_every = state.config.keepalive_every
    for index, token in enumerate(plan.tokens):
        if index == plan.strike_at:
            return False
        due = start + (index + 1) / plan.rate
        await pause(state.closing, due - loop.time())
        await response.write(sse_data(completion.content_chunk(token)))
        record.sent(token)
        if keepalive_every and (index + 1) % keepalive_every == 0:
            await response.write(SSE_KEEPALIVE)
    return plan.strike_at is None


def _close(request: web.Request) -> None:
    """End the connection without finishing the response.

    ``close()`` rather than ``abort()``: it still delivers what was written (and
    logged as sent), then ends the TCP connection before the chunked body's
    terminator, so the client sees an incomplete payload just the same.
    """
    transport = request.transport
    if transport is not None:
        transport.close()
