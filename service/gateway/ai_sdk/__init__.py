"""The Vercel AI SDK's front door: ``useChat``'s chat endpoints speaking the UI message stream
(v1) with resume and stop (``/v1/ai-sdk/chat``). Every generation is an ordinary tokenrelay
job, read through the OpenAI door's bridge and entry follower; the stream is a translation
of the job's event stream, not a second pipeline (docs/ai-sdk.md)."""

from __future__ import annotations

from aiohttp.web import RouteDef

from service.gateway.ai_sdk import chat_api

routes: list[RouteDef] = [*chat_api.routes]
