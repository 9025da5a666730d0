"""The SSE read mode (protocol section 5.8): ``data`` events carrying a batch of the
stream (text as is, one ``data:`` line per line so no byte can start another field; other
content types base64-encoded), each followed by a ``control`` event with the next offset,
the cursor, ``upToDate`` and, at the end of a closed stream, ``streamClosed``."""

from __future__ import annotations

import base64
import json
import re

from aiohttp import web

from service.gateway.durable_streams.errors import secured
from service.gateway.durable_streams.protocol import STREAM_SSE_DATA_ENCODING, is_text
from service.gateway.event_stream import EventStream

# A connection is closed after this long so caches in front can collapse readers onto new
# requests (protocol section 10.2); the client reconnects from its last offset.
CONNECTION_SECONDS = 60.0

_LINE_BREAK = re.compile(rb"\r\n|\r|\n")


def data_event(payload: bytes, *, text: bool) -> bytes:
    """One ``data`` event: text split into ``data:`` lines (a line break in the text ends a
    line, so no byte can start another field), anything else base64."""
    if not text:
        return b"event: data\ndata:" + base64.b64encode(payload) + b"\n\n"
    lines = _LINE_BREAK.split(payload)
    return b"event: data\n" + b"".join(_data_line(line) for line in lines) + b"\n"


def _data_line(line: bytes) -> bytes:
    """``data:`` and the line; a reader drops one space after the colon, so a line that
    starts with a space gets one more (``data:x`` stays as readers and the suite expect)."""
    return (b"data: " if line.startswith(b" ") else b"data:") + line + b"\n"


def control_event(next_offset: str, *, cursor: str | None, up_to_date: bool, closed: bool) -> bytes:
    """One ``control`` event (no cursor once the stream is closed)."""
    control: dict[str, object] = {"streamNextOffset": next_offset}
    if closed:
        control["streamClosed"] = True
        control["upToDate"] = True
    else:
        if cursor is not None:
            control["streamCursor"] = cursor
        if up_to_date:
            control["upToDate"] = True
    return b"event: control\ndata:" + json.dumps(control).encode() + b"\n\n"


class SseResponse(EventStream):
    """The SSE read mode's answer: text data as is, other content types base64."""

    def __init__(self, request: web.Request, content_type: str) -> None:
        self.text = is_text(content_type)
        super().__init__(
            request,
            {} if self.text else {STREAM_SSE_DATA_ENCODING: "base64"},
            content_type="text/event-stream",  # exactly, as the protocol's readers check it
        )

    async def open(self) -> None:
        """Send the status line and headers, the protocol's security headers among them."""
        secured(self.response)
        await super().open()
