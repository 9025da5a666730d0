"""A Server-Sent Events answer written by a handler of its own (the OpenAI, AI SDK and
Durable Streams front doors; the native viewers go through ``fanout/``): headers, and writes
that a client must take within ``SEND_TIMEOUT_SECONDS`` or be disconnected."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from aiohttp import web

from service.gateway.state import STATE


class EventStream:
    """An SSE response whose every write must be taken within the send timeout."""

    def __init__(
        self,
        request: web.Request,
        headers: Mapping[str, str] | None = None,
        *,
        content_type: str = "text/event-stream; charset=utf-8",
    ) -> None:
        self._request = request
        self._timeout = request.app[STATE].settings.send_timeout_seconds
        self.response = web.StreamResponse(
            headers={
                "Content-Type": content_type,
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
                **(headers or {}),
            }
        )

    async def open(self) -> None:
        """Send the status line and headers."""
        await self.response.prepare(self._request)

    async def send(self, data: bytes) -> None:
        """Write ``data``; a client that cannot take it in time is disconnected
        (:class:`ConnectionResetError`, as for a client that went away)."""
        if not data:
            return
        try:
            async with asyncio.timeout(self._timeout):
                await self.response.write(data)
        except TimeoutError:
            if self._request.transport is not None:
                self._request.transport.abort()
            raise ConnectionResetError("the client took no data in time") from None
        self._request.app[STATE].metrics.bytes_sent.inc(len(data))
