"""The Responses API's background subset: create, retrieve (optionally as a resumable event
stream), cancel. Every response is a tokenrelay job; see ``responses_events.py`` for the
events and their numbering."""

from __future__ import annotations

import contextlib
import logging

import orjson
from aiohttp import web
from redis.exceptions import RedisError

from service.contract.errors import Conflict, NotFound, Unavailable
from service.contract.events import TERMINAL
from service.contract.keys import job_record_key
from service.contract.store.cancel import cancel_job
from service.contract.store.job_reader import read_job
from service.contract.store.scripts import as_text
from service.gateway.access_control import client_address
from service.gateway.auth import require_canceller, require_viewer
from service.gateway.event_stream import EventStream
from service.gateway.fanout.frames import PING
from service.gateway.openai.bridge import (
    check_streaming_allowed,
    check_submitter,
    job_headers,
    start_job,
)
from service.gateway.openai.entries import follow_entries
from service.gateway.openai.errors import OpenAIBadRequest, openai_errors
from service.gateway.openai.requests import parse_responses_request, read_body, responses_job
from service.gateway.openai.response_object import (
    ResponseHead,
    job_id_of,
    response_from_record,
)
from service.gateway.openai.responses_events import Event, ResponsesTranslator
from service.gateway.presence import VIEWER_COUNTS
from service.gateway.state import STATE

log = logging.getLogger(__name__)

routes = web.RouteTableDef()


@routes.post("/v1/responses")
@openai_errors
async def create_response(request: web.Request) -> web.StreamResponse:
    """Submit a job; answer at once (``background``), stream its events, or wait for it."""
    state = request.app[STATE]
    owner = check_submitter(request)
    body = parse_responses_request(await read_body(request))
    job_request = responses_job(body, state.settings)
    if body.stream:
        check_streaming_allowed(state)
    job = await start_job(request, owner, job_request)
    if body.stream:
        return await _stream_events(request, job.id, after=-1)
    if not body.background and not await _wait_for_end(request, job.id):
        raise Unavailable(
            "the gateway is shutting down before the response ended; retrieve it again",
            code="shutting_down",
        )
    record, output = await read_job(state.redis, state.settings, job.id)
    return web.json_response(response_from_record(record, output), headers=job.headers)


@routes.get("/v1/responses/{response_id}")
@openai_errors
async def retrieve_response(request: web.Request) -> web.StreamResponse:
    """The response now, or (``?stream=true``) its events after ``starting_after``."""
    state = request.app[STATE]
    job_id = job_id_of(request.match_info["response_id"])
    require_viewer(request, state.settings, state.tokens, job_id)
    if _flag(request, "stream"):
        return await _stream_events(request, job_id, after=_starting_after(request))
    record, output = await read_job(state.redis, state.settings, job_id)
    return web.json_response(
        response_from_record(record, output), headers=job_headers(state, job_id)
    )


@routes.post("/v1/responses/{response_id}/cancel")
@openai_errors
async def cancel_response(request: web.Request) -> web.Response:
    """Cancel the job: its readers get ``response.cancelled``; the worker stops."""
    state = request.app[STATE]
    check_submitter(request)
    job_id = job_id_of(request.match_info["response_id"])
    # As on OpenAI, the key that created the response (or an admin key) may cancel it; with
    # auth off there is no key to tell who did, so the cancel token its creator got is needed.
    owner = await state.redis.hget(job_record_key(job_id), "owner")
    require_canceller(request, state.settings, state.tokens, job_id, as_text(owner or b""))
    try:
        cancelled = await cancel_job(state.redis, state.scripts, state.settings, job_id)
    except NotFound:
        raise NotFound(f"No response found with id 'resp_{job_id}'.", code="not_found") from None
    except Conflict as exc:
        raise Conflict(exc.message.replace("job", "response"), code="response_finished") from None
    if cancelled:
        state.metrics.jobs_cancelled.inc()
        log.info("job cancelled", extra={"job_id": job_id, "api": "responses"})
    record, output = await read_job(state.redis, state.settings, job_id)
    return web.json_response(response_from_record(record, output))


def encode_event(event: Event) -> bytes:
    """One Responses event as SSE; its ``id:`` is its sequence number (for EventSource)."""
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (
        event["sequence_number"],
        event["type"].encode(),
        orjson.dumps(event),
    )


async def _stream_events(request: web.Request, job_id: str, *, after: int) -> web.StreamResponse:
    """Every event numbered above ``after``, live until the response ends."""
    state = request.app[STATE]
    check_streaming_allowed(state)
    address = client_address(request, state.settings)
    await state.limiter.check("stream", f"addr:{address}", state.settings.stream_rate_per_minute)
    with state.stream_slots.hold(address):
        record, _ = await read_job(state.redis, state.settings, job_id)
        translator = ResponsesTranslator(ResponseHead.from_record(record))
        stream = EventStream(request, job_headers(state, job_id))
        await stream.open()
        state.metrics.viewers.inc()
        try:
            feed = follow_entries(
                state.redis,
                state.hub,
                job_id,
                idle_seconds=state.settings.ping_seconds,
                counts=request.app[VIEWER_COUNTS],
            )
            async with contextlib.aclosing(feed):
                async for entries in feed:
                    if not entries:
                        await stream.send(PING)
                        continue
                    await stream.send(
                        b"".join(
                            encode_event(event)
                            for entry in entries
                            for event in translator.translate(entry)
                            if event["sequence_number"] > after
                        )
                    )
            if translator.finished and translator.next_sequence <= after:
                await stream.send(encode_event(_unknown_position(after, translator)))
        except (TimeoutError, ConnectionResetError):
            log.debug("responses stream client gone", extra={"job_id": job_id})
        except RedisError as exc:
            log.warning("responses stream lost redis", extra={"job_id": job_id, "error": str(exc)})
        finally:
            state.metrics.viewers.dec()
        return stream.response


def _unknown_position(after: int, translator: ResponsesTranslator) -> Event:
    """The answer to a resume after an event the finished response never had (never a
    silent empty stream: the position was made up, or Redis lost events)."""
    last = translator.next_sequence - 1
    return {
        "type": "error",
        "code": "unknown_position",
        "message": f"starting_after={after} is past this response's last event ({last})",
        "param": "starting_after",
        "sequence_number": translator.next_sequence,
    }


async def _wait_for_end(request: web.Request, job_id: str) -> bool:
    """Wait until the job's terminal entry; false if the gateway stopped following first."""
    state = request.app[STATE]
    feed = follow_entries(
        state.redis,
        state.hub,
        job_id,
        idle_seconds=state.settings.ping_seconds,
        counts=request.app[VIEWER_COUNTS],
    )
    async with contextlib.aclosing(feed):
        async for entries in feed:
            if entries and entries[-1].terminal:
                return True
    record, _ = await read_job(state.redis, state.settings, job_id)
    return record.status in TERMINAL


def _flag(request: web.Request, name: str) -> bool:
    value = request.query.get(name, "false").lower()
    if value not in ("true", "false", "1", "0"):
        raise OpenAIBadRequest(
            f"Invalid value for '{name}': expected true or false.", param=name, code="invalid_value"
        )
    return value in ("true", "1")


def _starting_after(request: web.Request) -> int:
    """``?starting_after=N``, else a ``Last-Event-ID`` (an EventSource's reconnect), else -1."""
    value = request.query.get("starting_after") or request.headers.get("Last-Event-ID")
    if value is None or value == "":
        return -1
    if not value.strip().isdigit() or len(value) > 18:
        raise OpenAIBadRequest(
            f"Invalid value for 'starting_after': {value[:40]!r} is not a sequence number.",
            param="starting_after",
            code="invalid_value",
        )
    return int(value)
