"""The OpenAI-compatible front door: ``POST /v1/chat/completions`` and the Responses API's
background subset (``/v1/responses``). Every call becomes an ordinary tokenrelay job, so it is
queued, fanned out, resumable and visible on the page; the streams are translations of the
job's event stream, not a second pipeline."""

from __future__ import annotations

from aiohttp.web import RouteDef

from service.gateway.openai import chat_api, responses_api

routes: list[RouteDef] = [*chat_api.routes, *responses_api.routes]
