"""The aiohttp application: OpenAI's HTTP surface plus the ``/_sim`` control endpoints."""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from pydantic import ValidationError

from simulator.config import SimConfig
from simulator.errors import (
    OpenAIError,
    invalid_api_key,
    invalid_url,
    missing_api_key,
    model_not_found,
    rate_limited,
    server_error,
)
from simulator.faults import FaultKind, FaultRule
from simulator.plan import plan_completion
from simulator.request import parse_chat_request
from simulator.requestlog import Status
from simulator.respond import send_stream, send_whole
from simulator.state import STATE, SimState
from simulator.wire import Completion

DEFAULT_MODEL = "tokenrelay-sim"
"""The model /v1/models lists when the simulator accepts any model."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def create_app(config: SimConfig) -> web.Application:
    """A simulated upstream serving ``config``."""
    app = web.Application(middlewares=[_openai_errors])
    app[STATE] = SimState.from_config(config)
    app.router.add_post("/v1/chat/completions", _chat_completions)
    app.router.add_get("/v1/models", _models)
    app.router.add_get("/_sim/requests", _list_requests)
    app.router.add_delete("/_sim/requests", _clear_requests)
    app.router.add_get("/_sim/faults", _get_fault)
    app.router.add_post("/_sim/faults", _set_fault)
    app.router.add_get("/healthz", _healthz)
    app.on_shutdown.append(_stop_responses)
    return app


@web.middleware
async def _openai_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer every error as OpenAI does, unknown paths included."""
    try:
        return await handler(request)
    except OpenAIError as exc:
        return exc.response()
    except (web.HTTPNotFound, web.HTTPMethodNotAllowed):
        return invalid_url(request.method, request.path).response()


async def _stop_responses(app: web.Application) -> None:
    app[STATE].closing.set()


async def _chat_completions(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    record = state.log.open(request.headers)
    try:
        _authorize(request, state.config.api_key)
        chat = parse_chat_request(await request.read())
        record.model, record.prompt = chat.model, chat.prompt
        if state.config.models and chat.model not in state.config.models:
            raise model_not_found(chat.model)
        plan = plan_completion(chat, state.config, state.faults)
        record.fault = plan.fault
        if plan.fault is FaultKind.RATE_LIMIT:
            raise rate_limited(chat.model, plan.rule.retry_after)
        if plan.fault is FaultKind.SERVER_ERROR:
            raise server_error()
        completion = Completion(model=chat.model, include_usage=chat.include_usage)
        record.request_id = completion.id
        send = send_stream if chat.stream else send_whole
        return await send(request, plan, completion, state, record)
    except OpenAIError as exc:
        record.finish(Status.FAILED, http_status=exc.status, error=exc.message)
        raise
    except asyncio.CancelledError:
        gone = Status.FAILED if state.closing.is_set() else Status.CLIENT_DISCONNECTED
        record.finish(gone, error="request cancelled")
        raise


def _authorize(request: web.Request, api_key: str | None) -> None:
    if api_key is None:
        return
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise missing_api_key()
    if not hmac.compare_digest(given.strip().encode(), api_key.encode()):
        raise invalid_api_key(given.strip())


async def _models(request: web.Request) -> web.Response:
    state = request.app[STATE]
    _authorize(request, state.config.api_key)
    created = int(time.time())
    models = state.config.models or [DEFAULT_MODEL]
    data = [
        {"id": model, "object": "model", "created": created, "owned_by": "tokenrelay-simulator"}
        for model in models
    ]
    return web.json_response({"object": "list", "data": data})


async def _list_requests(request: web.Request) -> web.Response:
    records = request.app[STATE].log.records(job=request.query.get("job"))
    return web.json_response([record.to_json() for record in records])


async def _clear_requests(request: web.Request) -> web.Response:
    return web.json_response({"cleared": request.app[STATE].log.clear()})


async def _get_fault(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].faults.default.model_dump(mode="json"))


async def _set_fault(request: web.Request) -> web.Response:
    try:
        rule = FaultRule.model_validate_json(await request.read())
    except ValidationError as exc:
        raise OpenAIError(400, f"invalid fault: {exc.errors()[0]['msg']}") from exc
    request.app[STATE].faults.set_default(rule)
    return web.json_response(rule.model_dump(mode="json"))


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})
