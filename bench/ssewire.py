"""The load generator's wire code: an incremental HTTP/1.1 chunked-body decoder and a
post-hoc Server-Sent Events parser.

The hot path only de-chunks and appends payload bytes; events are parsed after the
measurement, once per distinct payload, so the load generator spends as little CPU per
received byte as possible.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

Sink = Callable[[bytes], None]


class ChunkedDecoder:
    """Decodes a ``Transfer-Encoding: chunked`` body fed in arbitrary pieces."""

    __slots__ = ("_pending", "_remaining", "_skip", "done", "sink")

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self._pending = b""
        self._remaining = 0  # payload bytes left in the current chunk
        self._skip = 0  # CRLF bytes after a chunk's payload still to skip
        self.done = False

    def feed(self, data: bytes) -> None:
        """Consume ``data``; payload goes to ``sink``; ``done`` is set at the last chunk."""
        if self._pending:
            data = self._pending + data
            self._pending = b""
        pos = 0
        size = len(data)
        while pos < size and not self.done:
            if self._remaining:
                end = min(size, pos + self._remaining)
                self.sink(data[pos:end] if pos or end != size else data)
                self._remaining -= end - pos
                pos = end
                if not self._remaining:
                    self._skip = 2
                continue
            if self._skip:
                take = min(self._skip, size - pos)
                self._skip -= take
                pos += take
                continue
            eol = data.find(b"\r\n", pos)
            if eol < 0:
                self._pending = data[pos:]
                return
            length = int(data[pos:eol].split(b";", 1)[0], 16)
            pos = eol + 2
            if length == 0:
                self.done = True
                return
            self._remaining = length


@dataclass(slots=True)
class Event:
    """One parsed SSE event and the payload offset just past its blank line."""

    end: int
    id: str | None
    event: str
    data: bytes


def parse_events(payload: bytes) -> list[Event]:
    """Every complete event of an SSE payload (``\\n`` or ``\\r\\n`` line ends).

    Comments and ``retry:`` lines are skipped; a block without ``data`` is not an event.
    """
    if b"\r" in payload:
        # The producers under test never put a bare CR in a frame; normalising keeps
        # offsets only approximately right, which is fine for latency marks.
        payload = payload.replace(b"\r\n", b"\n")
    events: list[Event] = []
    pos = 0
    size = len(payload)
    while pos < size:
        cut = payload.find(b"\n\n", pos)
        if cut < 0:
            break
        end = cut + 2
        event_id: str | None = None
        name = "message"
        data: list[bytes] = []
        for line in payload[pos:cut].split(b"\n"):
            if line.startswith(b"data:"):
                data.append(line[6:] if line[5:6] == b" " else line[5:])
            elif line.startswith(b"id:"):
                event_id = line[3:].strip().decode()
            elif line.startswith(b"event:"):
                name = line[6:].strip().decode()
        if data:
            events.append(Event(end, event_id, name, b"\n".join(data)))
        pos = end
    return events


def last_event_id(payload: bytes) -> str | None:
    """The id of the last complete event in ``payload`` (what EventSource resends)."""
    cut = payload.rfind(b"\n\n")
    if cut < 0:
        return None
    line = payload.rfind(b"\nid:", 0, cut)
    if line < 0:
        return None
    end = payload.find(b"\n", line + 1)
    return payload[line + 4 : end].strip().decode()
