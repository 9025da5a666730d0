"""A test viewer: reads a job's SSE stream with the project's decoder, drops and resumes."""

from __future__ import annotations

from dataclasses import dataclass, field

import aiohttp
import orjson

from service.contract.events import RESET, TERMINAL, TOKEN
from service.contract.sse_decoder import SSEDecoder, SSEEvent


@dataclass
class Reading:
    """What one connection returned."""

    status: int
    events: list[SSEEvent]
    retry: int | None
    comments: int = 0


def text_of(events: list[SSEEvent]) -> str:
    """The output a viewer shows: all token text since the last reset."""
    parts: list[str] = []
    for event in events:
        if event.event == RESET:
            parts.clear()
        elif event.event == TOKEN:
            parts.append(orjson.loads(event.data)["text"])
    return "".join(parts)


async def read_stream(
    session: aiohttp.ClientSession,
    url: str,
    *,
    last_event_id: str | None = None,
    via_query: bool = False,
    max_events: int | None = None,
    headers: dict[str, str] | None = None,
    sink: list[SSEEvent] | None = None,
) -> Reading:
    """Open the stream and read until it ends, or until ``max_events`` events (then drop).

    Events go to ``sink`` as they arrive, so a caller keeps them when the connection breaks.
    """
    request_headers = dict(headers or {})
    params: dict[str, str] = {}
    if last_event_id is not None:
        if via_query:
            params["last_event_id"] = last_event_id
        else:
            request_headers["Last-Event-ID"] = last_event_id
    decoder = SSEDecoder()
    events: list[SSEEvent] = [] if sink is None else sink
    async with session.get(url, headers=request_headers, params=params) as response:
        if response.status != 200:
            await response.read()
            return Reading(response.status, [], None)
        assert response.headers["Content-Type"].startswith("text/event-stream")
        async for chunk in response.content.iter_any():
            for event in decoder.feed(chunk):
                events.append(event)
                if max_events is not None and len(events) >= max_events:
                    return Reading(200, events, decoder.retry)
        events.extend(decoder.finish())
    return Reading(200, events, decoder.retry)


@dataclass
class ResumingViewer:
    """A viewer that reads in pieces, resuming each time from the last event id it saw."""

    session: aiohttp.ClientSession
    url: str
    events: list[SSEEvent] = field(default_factory=list)
    connections: int = 0

    @property
    def last_id(self) -> str | None:
        """The id EventSource would send on reconnect."""
        return self.events[-1].id if self.events else None

    @property
    def finished(self) -> bool:
        """Whether a terminal event arrived."""
        return bool(self.events) and self.events[-1].event in TERMINAL

    async def read(self, max_events: int | None = None, *, via_query: bool = False) -> int:
        """One connection; returns its HTTP status (0 when the connection broke)."""
        self.connections += 1
        received: list[SSEEvent] = []
        try:
            reading = await read_stream(
                self.session,
                self.url,
                last_event_id=self.last_id,
                via_query=via_query,
                max_events=max_events,
                sink=received,
            )
            return reading.status
        except (aiohttp.ClientError, ConnectionError):
            return 0
        finally:
            self.events.extend(received)

    @property
    def text(self) -> str:
        """The viewer's text."""
        return text_of(self.events)
