"""One connected viewer as the feed sees it: its position, its bounded queue of batches, and
the direct write that skips the queue while it keeps up."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Protocol

from service.contract.events import ZERO_ID, StreamId
from service.gateway.fanout.batch import Batch
from service.gateway.fanout.direct_write import DirectSink


class ViewerEnd(Protocol):
    """The client's end of a viewer's stream, one object rather than three callables (each
    bound method or closure kept per viewer is memory per viewer)."""

    async def write(self, data: bytes) -> None:
        """Write to the client (the viewer's task); ConnectionResetError once it is gone."""

    def abort(self) -> None:
        """Drop the connection (the hub's sweeper, for a write stuck too long)."""


@dataclass(eq=False, slots=True)
class Viewer:
    """One connected viewer: its position, and its bounded queue of batches.

    While the viewer's task is idle (everything up to ``position`` sent, nothing queued) and
    its socket keeps up, the feed writes a new batch for it directly (``sink``) instead of
    queueing it and waking the task: see ``service/gateway/fanout/direct_write.py``.
    """

    limit: int
    # A list, not a deque: an empty deque holds a 64-slot block (760 B), an empty list 56 B,
    # and an idle viewer's queue is empty.
    batches: list[Batch] = field(default_factory=list)
    # What its task awaits while idle, resolved by ``wake`` (a bare future: an asyncio.Event
    # would add an object and its waiters' deque to every viewer).
    waiter: asyncio.Future[None] | None = None
    overflowed: bool = False
    closed_reason: str | None = None
    # The last entry the client has been sent; moved by whoever writes (task or feed).
    position: StreamId = ZERO_ID
    idle: bool = False  # its task waits for a wake with nothing left to write
    finished: bool = False  # the terminal batch went out through a direct write
    sink: DirectSink | None = None
    direct_bytes: int = 0
    # The client's end: the viewer's task writes through it (``send``), the sweeper aborts it.
    end: ViewerEnd | None = None
    sent: int = 0  # bytes the viewer's task wrote
    # Kept by the viewer's writer and read by the hub's sweeper.
    last_write: float = field(default_factory=time.monotonic)
    write_started: float | None = None
    needs_ping: bool = False

    @property
    def quiet(self) -> bool:
        """Nothing for its task to do until the feed or the sweeper wakes it."""
        return (
            not (self.batches or self.overflowed or self.needs_ping or self.finished)
            and self.closed_reason is None
        )

    async def send(self, data: bytes) -> None:
        """Write ``data`` from the viewer's task, timed for the hub's sweeper (it aborts a
        write stuck past the send timeout: no timer per write)."""
        assert self.end is not None
        self.sent += len(data)
        self.write_started = time.monotonic()
        await self.end.write(data)
        self.write_started = None
        self.last_write = time.monotonic()

    def offer(self, batch: Batch, chunk: bytes, now: float) -> bool:
        """Write a batch now (``chunk``: its frames as an HTTP chunk) if the viewer is caught
        up (True), else queue it; a viewer that falls ``limit`` batches behind is cut off.
        Runs once per viewer per batch: the feed counts direct writes per batch, not here."""
        if (
            self.idle
            and batch.prev == self.position
            and (sink := self.sink) is not None
            and not self.batches
            and not self.overflowed
            and self.closed_reason is None
            and sink.write(chunk)
        ):
            self.position = batch.last
            self.last_write = now
            self.direct_bytes += len(batch.frames)
            if batch.terminal:
                self.finished = True
                self.wake()
            return True
        if self.overflowed:
            return False
        if len(self.batches) >= self.limit:
            self.overflowed = True
            self.batches.clear()
        else:
            self.batches.append(batch)
        self.wake()
        return False

    def wake(self) -> None:
        """Wake the viewer's task if it waits; it then looks at what changed."""
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def close(self, reason: str) -> None:
        """End this viewer's stream (shutdown, feed ended without a terminal event)."""
        self.closed_reason = reason
        self.wake()

    def sweep(self, now: float, ping_seconds: float, send_timeout: float) -> None:
        """Ask for a ping after a quiet spell; drop a connection whose write is stuck (a
        stalled client, or a cut-off one still blocked in its last write)."""
        if self.write_started is not None:
            stuck = now - self.write_started
            if (stuck > send_timeout or self.overflowed) and self.end is not None:
                self.end.abort()
            return
        if now - self.last_write >= ping_seconds and not self.needs_ping:
            self.needs_ping = True
            self.wake()
