"""Incremental Server-Sent Events decoder (WHATWG HTML, "Parsing an event stream").

Written by hand on purpose: this is the hot path of every upstream token, and we
need the spec's exact behaviour (CR/LF/CRLF line ends, including a CRLF split
across reads; one BOM; comments; the one optional space after the colon)
while touching each byte only a constant number of times, however the bytes
are chunked. Generic SSE libraries either re-scan their buffer on every read
or split lines on Unicode line breaks such as U+2028, which SSE does not.

Deliberate differences from a browser's EventSource:
- invalid UTF-8 raises :class:`SSEDecodeError` instead of decoding to U+FFFD,
  so that a corrupted stream is noticed rather than shown;
- ``retry`` is recorded on the decoder but never acted on;
- an event (or line) longer than ``max_event_chars`` raises, to bound memory.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

_BOM = "\ufeff"


class SSEDecodeError(ValueError):
    """The byte stream is not a valid event stream (bad UTF-8, or too large)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SSEEvent:
    """One dispatched event.

    ``id`` is the stream's last event ID at dispatch time, as EventSource
    exposes it: an ``id`` field persists for the following events until
    another one replaces it; ``None`` means no ``id`` field was seen yet.
    """

    event: str = "message"
    data: str
    id: str | None = None


class SSEDecoder:
    """Turns chunks of an event stream into events, one ``feed`` at a time.

    ``last_event_id`` and ``retry`` hold the stream's last ``id`` and ``retry``
    field values (``None`` until one is seen).
    """

    def __init__(self, *, max_event_chars: int | None = None) -> None:
        self._max_event_chars = max_event_chars
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="strict")
        self._bom_checked = False
        # The current line's pieces; joined once the line ends, so a long line
        # arriving in many small chunks costs O(length), not O(length²).
        self._partial: list[str] = []
        self._partial_chars = 0
        # A chunk ended with CR: an LF at the start of the next one ends no new line.
        self._skip_lf = False
        self._data: list[str] = []
        self._data_chars = 0
        self._event_type = ""
        self.last_event_id: str | None = None
        self.retry: int | None = None

    def feed(self, data: bytes) -> list[SSEEvent]:
        """Decode the next chunk; return the events it completes (possibly none).

        Raises :class:`SSEDecodeError` on invalid UTF-8 (events completed earlier
        in the same chunk are dropped with it) or an event over the size limit.
        """
        try:
            text = self._utf8.decode(data)
        except UnicodeDecodeError as exc:
            raise SSEDecodeError(f"event stream is not valid UTF-8: {exc.reason}") from exc
        if not text:
            return []
        if not self._bom_checked:
            self._bom_checked = True
            if text.startswith(_BOM):
                text = text[1:]
                if not text:
                    return []
        if self._skip_lf:
            self._skip_lf = False
            if text.startswith("\n"):
                text = text[1:]
                if not text:
                    return []
        self._skip_lf = text.endswith("\r")
        # C-speed normalisation of the three line ends to LF; the CRLF pair is
        # replaced first so it counts as one line end.
        pieces = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        tail = pieces.pop()
        events: list[SSEEvent] = []
        if pieces:
            if self._partial:
                self._partial.append(pieces[0])
                pieces[0] = "".join(self._partial)
                self._partial.clear()
                self._partial_chars = 0
            for line in pieces:
                self._process_line(line, events)
        if tail:
            self._partial.append(tail)
            self._partial_chars += len(tail)
        self._check_size()
        return events

    def finish(self) -> list[SSEEvent]:
        """End of stream: discard any incomplete line or event, as the spec says.

        Always returns an empty list; a caller that needs to know whether the
        stream was cut short must judge that from the events it did get. The
        decoder is then ready for a new stream (the last event ID is kept, as
        EventSource keeps it across reconnections).
        """
        self._utf8.reset()
        self._bom_checked = False
        self._partial.clear()
        self._partial_chars = 0
        self._skip_lf = False
        self._reset_event()
        return []

    def _process_line(self, line: str, events: list[SSEEvent]) -> None:
        if not line:
            self._dispatch(events)
            return
        colon = line.find(":")
        if colon == 0:
            return  # comment
        if colon < 0:
            name, value = line, ""
        else:
            name = line[:colon]
            value = line[colon + 2 :] if line.startswith(" ", colon + 1) else line[colon + 1 :]
        if name == "data":
            self._data.append(value)
            self._data_chars += len(value) + 1
        elif name == "event":
            self._event_type = value
        elif name == "id":
            if "\x00" not in value:
                self.last_event_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry = int(value)
        # Any other field name is ignored, as the spec says.

    def _dispatch(self, events: list[SSEEvent]) -> None:
        if self._data:
            events.append(
                SSEEvent(
                    data="\n".join(self._data),
                    event=self._event_type or "message",
                    id=self.last_event_id,
                )
            )
        self._reset_event()

    def _reset_event(self) -> None:
        self._data.clear()
        self._data_chars = 0
        self._event_type = ""

    def _check_size(self) -> None:
        limit = self._max_event_chars
        if limit is not None and self._partial_chars + self._data_chars > limit:
            raise SSEDecodeError(f"event larger than {limit} characters")
