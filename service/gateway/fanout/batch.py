"""A batch: consecutive entries of one job's stream with their SSE frames, encoded once and
shared by every viewer of the job in this process."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from service.contract.events import StreamId
from service.gateway.fanout.frames import Entry, encode

HISTORY_CHUNK = 256  # entries per batch when a feed loads a job's past from Redis


@dataclass(frozen=True, slots=True)
class Batch:
    """Entries ``(prev, last]`` of a job's stream, with their frames."""

    prev: StreamId
    last: StreamId
    entries: list[Entry]
    frames: bytes
    terminal: bool

    def after(self, position: StreamId) -> bytes:
        """The frames of the entries after ``position``: the shared bytes in the common case."""
        if position <= self.prev:
            return self.frames
        if position >= self.last:
            return b""
        return encode([entry for entry in self.entries if entry.id > position])


# Told of every live batch the feed wrote straight to caught-up viewers, with how many got
# it: the gateway's metrics count per batch rather than per viewer (the hot path stays lean).
DirectWrites = Callable[["Batch", int], None]


def batches_of(entries: list[Entry], prev: StreamId) -> list[Batch]:
    """Cut consecutive entries after ``prev`` into encoded batches."""
    batches = []
    for start in range(0, len(entries), HISTORY_CHUNK):
        chunk = entries[start : start + HISTORY_CHUNK]
        batches.append(Batch(prev, chunk[-1].id, chunk, encode(chunk), chunk[-1].terminal))
        prev = chunk[-1].id
    return batches
