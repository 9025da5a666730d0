"""``POST /v1/chat/completions``: every call is a tokenrelay job, streamed or awaited."""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

from aiohttp import web
from redis.exceptions import RedisError

from service.contract.errors import Conflict, TokenRelayError, Unavailable, UpstreamError
from service.contract.event_data import DoneEvent, FailedEvent, JobEvent, parse_event
from service.contract.events import RESET, TOKEN, format_stream_id
from service.gateway.event_stream import EventStream
from service.gateway.fanout.frames import PING
from service.gateway.openai.bridge import (
    EVENTS_URL_HEADER,
    StartedJob,
    check_streaming_allowed,
    check_submitter,
    start_job,
)
from service.gateway.openai.chat_chunks import ChatChunks, chat_usage
from service.gateway.openai.entries import follow_entries
from service.gateway.openai.errors import openai_errors
from service.gateway.openai.requests import chat_job, parse_chat_request, read_body
from service.gateway.presence import VIEWER_COUNTS
from service.gateway.state import STATE

log = logging.getLogger(__name__)

routes = web.RouteTableDef()


def completion_id(job_id: str) -> str:
    """The completion id of a job."""
    return f"chatcmpl-{job_id}"


@routes.post("/v1/chat/completions")
@openai_errors
async def chat_completions(request: web.Request) -> web.StreamResponse:
    """Submit the conversation as a job; stream it as chunks or answer the completion."""
    state = request.app[STATE]
    owner = check_submitter(request)
    body = parse_chat_request(await read_body(request))
    job_request = chat_job(body, state.settings)
    if body.stream:
        check_streaming_allowed(state)
    job = await start_job(request, owner, job_request)
    if body.stream:
        return await _stream(request, job, include_usage=body.include_usage)
    return await _complete(request, job)


async def _stream(
    request: web.Request, job: StartedJob, *, include_usage: bool
) -> web.StreamResponse:
    state = request.app[STATE]
    chunks = ChatChunks(
        completion_id(job.id), int(time.time()), job.model, include_usage=include_usage
    )
    stream = EventStream(request, job.headers)
    await stream.open()
    state.metrics.viewers.inc()
    try:
        await stream.send(chunks.first())
        feed = follow_entries(
            state.redis,
            state.hub,
            job.id,
            idle_seconds=state.settings.ping_seconds,
            counts=request.app[VIEWER_COUNTS],
        )
        # The client counts as a viewer: the job is cancelled once it is gone (on_abandon).
        async with contextlib.aclosing(feed):
            async for entries in feed:
                await stream.send(chunks.translate(entries) if entries else PING)
                if chunks.ended:
                    break
        if not chunks.ended:
            await stream.send(chunks.interrupted(job.headers[EVENTS_URL_HEADER]))
    except (TimeoutError, ConnectionResetError):
        log.debug("chat stream client gone", extra={"job_id": job.id})
    except RedisError as exc:
        log.warning("chat stream lost redis", extra={"job_id": job.id, "error": str(exc)})
    finally:
        state.metrics.viewers.dec()
    return stream.response


async def _complete(request: web.Request, job: StartedJob) -> web.Response:
    """Wait for the job's end; answer the completion object (or the job's failure)."""
    state = request.app[STATE]
    parts: list[str] = []
    end: JobEvent | None = None
    feed = follow_entries(
        state.redis,
        state.hub,
        job.id,
        idle_seconds=state.settings.ping_seconds,
        counts=request.app[VIEWER_COUNTS],
    )
    async with contextlib.aclosing(feed):
        async for entries in feed:
            for entry in entries:
                if entry.kind == TOKEN:
                    parts.append(entry.text)
                elif entry.kind == RESET:
                    parts.clear()
                elif entry.terminal:
                    end = parse_event(format_stream_id(entry.id), entry.kind, entry.data)
    if end is None:
        raise Unavailable(
            "the gateway is shutting down before the job ended; read it at "
            f"{job.headers[EVENTS_URL_HEADER]}",
            code="shutting_down",
        )
    if isinstance(end, FailedEvent):
        raise _failure(end)
    if not isinstance(end, DoneEvent):
        raise Conflict("the job was cancelled", code="job_cancelled")
    body = _completion(job, "".join(parts), end)
    return web.json_response(body, headers=job.headers)


def _completion(job: StartedJob, text: str, end: DoneEvent) -> dict[str, Any]:
    message = {"role": "assistant", "content": text, "refusal": None}
    return {
        "id": completion_id(job.id),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": job.model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": end.finish_reason or "stop",
            }
        ],
        "usage": chat_usage(end.usage),
    }


def _failure(event: FailedEvent) -> TokenRelayError:
    return UpstreamError(event.message or "the generation failed", code=event.code, retryable=False)
