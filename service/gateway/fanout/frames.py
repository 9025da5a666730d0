"""Stream entries and their SSE frames.

Frames are built here by hand rather than with ``EventSourceResponse.send``: the fan-out hot
path encodes an event once and writes the same bytes to every viewer, and merges runs of
token entries into one event. Only Redis-generated entry IDs and our own event names go into
``id:``/``event:``; all untrusted text sits JSON-encoded inside ``data:``, where JSON escapes
CR, LF and NUL, so no token can inject an SSE field.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import orjson

from service.contract.events import RESET, STATUS, TERMINAL, TOKEN, StreamId, format_stream_id


class Entry(NamedTuple):
    """One event-stream entry as read from Redis (a named tuple: built for every entry read,
    a quarter of a frozen dataclass's cost)."""

    id: StreamId
    kind: str
    data: bytes  # the JSON text of the event's data, exactly as the worker wrote it
    text: str = ""  # a token's text, decoded once here so merging never re-parses JSON
    offset: int = 0  # its place in the stream (1, 2, ...); 0 for an entry written without one

    @property
    def terminal(self) -> bool:
        """Whether this entry ends the job."""
        return self.kind in TERMINAL


def entries_from_reply(raw: Iterable[Any] | None) -> list[Entry]:
    """Convert an XRANGE/XREAD reply for one stream (bytes, as the client is set up) into
    entries; an entry's fields as the client parses them (a dict) or as Redis sends them."""
    # Runs for every entry every gateway reads: ids Redis made are split without the
    # validation an id from a client gets (``parse_stream_id``), event names looked up.
    entries = []
    for entry_id, fields in raw or ():
        if not isinstance(fields, dict):
            pairs = iter(fields)
            fields = dict(zip(pairs, pairs, strict=True))
        raw_kind = fields[b"t"]
        kind = _KINDS.get(raw_kind) or raw_kind.decode()
        data = fields[b"d"]
        text = orjson.loads(data)["text"] if kind == TOKEN else ""
        offset = int(fields.get(b"n", 0))
        ms, _, seq = entry_id.partition(b"-")
        entries.append(Entry((int(ms), int(seq)), kind, data, text, offset))
    return entries


_KINDS = {kind.encode(): kind for kind in (STATUS, TOKEN, RESET, *TERMINAL)}


def frame(entry_id: StreamId, kind: str, data: bytes) -> bytes:
    """One SSE event."""
    return b"id: %s\nevent: %s\ndata: %s\n\n" % (
        format_stream_id(entry_id).encode(),
        kind.encode(),
        data,
    )


def retry_frame(retry_ms: int) -> bytes:
    """The stream's first frame: how long EventSource waits before reconnecting."""
    return b"retry: %d\n\n" % retry_ms


PING = b": ping\n\n"


def encode(entries: Sequence[Entry]) -> bytes:
    """Frames for ``entries``, each run of consecutive tokens merged into one event whose id is
    the run's last entry id (the resume point stays exact)."""
    out: list[bytes] = []
    run: list[Entry] = []
    for entry in entries:
        if entry.kind == TOKEN:
            run.append(entry)
            continue
        if run:
            out.append(_merged_tokens(run))
            run = []
        out.append(frame(entry.id, entry.kind, entry.data))
    if run:
        out.append(_merged_tokens(run))
    return b"".join(out)


def _merged_tokens(run: list[Entry]) -> bytes:
    if len(run) == 1:
        return frame(run[0].id, TOKEN, run[0].data)
    text = "".join(entry.text for entry in run)
    return frame(run[-1].id, TOKEN, orjson.dumps({"text": text}))
