"""Event type names of the job event stream and the arithmetic of stream entry IDs."""

from __future__ import annotations

import re
from typing import Final

STATUS: Final = "status"
TOKEN: Final = "token"
RESET: Final = "reset"
DONE: Final = "done"
FAILED: Final = "failed"
CANCELLED: Final = "cancelled"

# A terminal event ends a job's stream, and its name is also the job's final ``status``.
TERMINAL: Final = frozenset({DONE, FAILED, CANCELLED})
ALL: Final = frozenset({STATUS, TOKEN, RESET, DONE, FAILED, CANCELLED})

# Job states as written in the record's ``status`` field.
QUEUED: Final = "queued"
RUNNING: Final = "running"

_ID_RE = re.compile(r"^(0|[1-9][0-9]{0,19})-(0|[1-9][0-9]{0,19})$")
_U64 = 2**64

StreamId = tuple[int, int]
ZERO_ID: Final[StreamId] = (0, 0)


def parse_stream_id(text: str) -> StreamId:
    """Parse a Redis Stream entry ID ``ms-seq``; raise ``ValueError`` if malformed."""
    match = _ID_RE.match(text)
    if match is None:
        raise ValueError(f"not a stream entry id: {text!r}")
    ms, seq = int(match.group(1)), int(match.group(2))
    if ms >= _U64 or seq >= _U64:
        raise ValueError(f"stream entry id out of range: {text!r}")
    return ms, seq


def format_stream_id(value: StreamId) -> str:
    """The textual form Redis and SSE use."""
    return f"{value[0]}-{value[1]}"
