"""``/v1/ai-sdk/chat``: the AI SDK's chat endpoints (``useChat`` with ``DefaultChatTransport``),
each generation a tokenrelay job.

- ``POST /v1/ai-sdk/chat``: submit the conversation as a job, answer its UI message stream.
- ``GET /v1/ai-sdk/chat/{chatId}/stream``: the chat's active generation from its start, or
  ``204`` when it has none (the transport's ``reconnectToStream`` then resolves to null).
- ``POST /v1/ai-sdk/chat/{chatId}/stop``: cancel the chat's active generation (closing the
  stream on the client, ``useChat``'s ``stop()``, is only a disconnect).

Auth, rate limits and bad input are those of the native API, answered as its JSON errors.
"""

from __future__ import annotations

import contextlib
import logging

from aiohttp import web
from redis.exceptions import RedisError

from service.contract.errors import BadRequest, Conflict, Gone, NotFound
from service.contract.events import TERMINAL
from service.contract.keys import job_record_key
from service.contract.store.cancel import cancel_job
from service.contract.store.scripts import as_text
from service.gateway.access_control import client_address
from service.gateway.ai_sdk.chat_jobs import active_job, set_active_job
from service.gateway.ai_sdk.requests import chat_job, parse_chat_request
from service.gateway.ai_sdk.ui_chunks import (
    MESSAGE_ID_PREFIX,
    UI_MESSAGE_STREAM_HEADER,
    UI_MESSAGE_STREAM_VERSION,
    UIMessageChunks,
)
from service.gateway.api.jobs import read_json
from service.gateway.event_stream import EventStream
from service.gateway.fanout.frames import PING
from service.gateway.openai.bridge import (
    check_streaming_allowed,
    check_submitter,
    job_headers,
    start_job,
)
from service.gateway.openai.entries import follow_entries
from service.gateway.presence import VIEWER_COUNTS
from service.gateway.state import STATE

log = logging.getLogger(__name__)

routes = web.RouteTableDef()


@routes.post("/v1/ai-sdk/chat")
async def chat(request: web.Request) -> web.StreamResponse:
    """Submit the conversation as a job; stream it as the chat's new active generation."""
    state = request.app[STATE]
    owner = check_submitter(request)
    body = parse_chat_request(await read_json(request))
    job_request = chat_job(body, state.settings)
    check_streaming_allowed(state)
    job = await start_job(request, owner, job_request)
    await set_active_job(state.redis, state.settings, owner, body.id, job.id)
    return await _stream(request, job.id, job.headers)


@routes.get("/v1/ai-sdk/chat/{chat_id}/stream")
async def resume(request: web.Request) -> web.StreamResponse:
    """The chat's active generation from its first chunk; ``204`` when it has none."""
    state = request.app[STATE]
    owner = check_submitter(request)
    chat_id = _chat_id(request)
    check_streaming_allowed(state)
    address = client_address(request, state.settings)
    await state.limiter.check("stream", f"addr:{address}", state.settings.stream_rate_per_minute)
    with state.stream_slots.hold(address):
        job_id = await active_job(state.redis, owner, chat_id)
        status = None
        if job_id is not None:
            status = await state.redis.hget(job_record_key(job_id), "status")
        if job_id is None or status is None or as_text(status) in TERMINAL:
            state.metrics.no_content.inc()
            return web.Response(status=204)
        return await _stream(request, job_id, job_headers(state, job_id))


@routes.post("/v1/ai-sdk/chat/{chat_id}/stop")
async def stop(request: web.Request) -> web.Response:
    """Cancel the chat's active generation: its readers get ``abort``, the worker closes the
    upstream call. Stopping a chat with nothing running is not an error."""
    state = request.app[STATE]
    owner = check_submitter(request)
    chat_id = _chat_id(request)
    expected = await _stop_target(request)
    job_id = await active_job(state.redis, owner, chat_id)
    cancelled = False
    if job_id is not None and expected in (None, job_id, f"{MESSAGE_ID_PREFIX}{job_id}"):
        with contextlib.suppress(Conflict, NotFound, Gone):  # it ended first: nothing to stop
            cancelled = await cancel_job(state.redis, state.scripts, state.settings, job_id)
        if cancelled:
            state.metrics.jobs_cancelled.inc()
            log.info("job cancelled", extra={"job_id": job_id, "api": "ai-sdk"})
    return web.json_response({"success": True, "job_id": job_id, "cancelled": cancelled})


async def _stream(request: web.Request, job_id: str, headers: dict[str, str]) -> web.StreamResponse:
    """The job's UI message stream from its first entry, live until it ends."""
    state = request.app[STATE]
    chunks = UIMessageChunks(job_id)
    stream = EventStream(request, {UI_MESSAGE_STREAM_HEADER: UI_MESSAGE_STREAM_VERSION, **headers})
    await stream.open()
    state.metrics.viewers.inc()
    try:
        await stream.send(chunks.start())
        feed = follow_entries(
            state.redis,
            state.hub,
            job_id,
            idle_seconds=state.settings.ping_seconds,
            counts=request.app[VIEWER_COUNTS],
        )
        async with contextlib.aclosing(feed):
            async for entries in feed:
                await stream.send(chunks.translate(entries) if entries else PING)
                if chunks.ended:
                    break
    except (TimeoutError, ConnectionResetError):
        log.debug("ai-sdk stream client gone", extra={"job_id": job_id})
    except RedisError as exc:
        log.warning("ai-sdk stream lost redis", extra={"job_id": job_id, "error": str(exc)})
    finally:
        state.metrics.viewers.dec()
    if not chunks.ended and request.transport is not None:
        # The gateway stopped following before the job ended (shutdown, a reader too slow,
        # Redis gone): the job goes on. A clean end would read as a complete message, so the
        # connection is cut instead: the client sees a network error and resumes.
        request.transport.abort()
    return stream.response


def _chat_id(request: web.Request) -> str:
    chat_id = request.match_info["chat_id"]
    if not 1 <= len(chat_id) <= 255 or not chat_id.isprintable():
        raise BadRequest(
            "the chat id must be 1 to 255 printable characters", code="invalid_chat_id"
        )
    return chat_id


async def _stop_target(request: web.Request) -> str | None:
    """The generation the stop is meant for, when the body names one (``activeStreamId``: the
    job id or the message id), so a late stop never ends a newer generation."""
    if not request.can_read_body:
        return None
    body = await read_json(request)
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object", code="invalid_body")
    unknown = sorted(set(body) - {"activeStreamId", "assistantMessage"})
    if unknown:
        raise BadRequest(
            f"unknown field {unknown[0]!r}: a stop takes activeStreamId and assistantMessage",
            code="unknown_parameter",
        )
    target = body.get("activeStreamId")
    if target is not None and not isinstance(target, str):
        raise BadRequest("activeStreamId must be a string", code="invalid_request")
    return target
