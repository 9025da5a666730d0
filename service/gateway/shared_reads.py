"""Concurrent identical reads of one key share one round trip to Redis.

A reconnect storm brings thousands of requests for the same job at once, each of which would
read the same job record. Here they share reads, and every caller still gets a fresh answer:
a caller joins the next read of its key that has *not been sent yet*, never one already in
flight (that one may have reached Redis before a write the caller saw finish). So each
answer was read after its caller arrived, as its own read would have been; Redis stays the
truth. One read per key is in flight at a time: the callers who arrive while it is out share
the next one, sent as soon as it returns.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
from collections.abc import Awaitable, Callable, Hashable
from types import TracebackType
from typing import Any

# A read's outcome: its answer, or the exception it raised with the traceback it had then.
Outcome = tuple[Any, BaseException | None, TracebackType | None]


class SharedReads:
    """One read in flight per key; callers arriving meanwhile share the next one."""

    def __init__(self) -> None:
        # Per key: the next read's answer, not sent yet (callers arriving now join it).
        self._next: dict[Hashable, asyncio.Future[Outcome]] = {}
        # Per key: the task sending that key's reads, one after another.
        self._senders: dict[Hashable, asyncio.Task[None]] = {}
        self.reads = 0  # reads sent (for tests and metrics)
        self.shared = 0  # callers answered by a read another caller asked for

    async def read(self, key: Hashable, fetch: Callable[[], Awaitable[Any]]) -> Any:
        """``fetch()``'s answer from a read sent after this call began, shared with the other
        callers of ``key`` waiting for the same read (the first of them supplies ``fetch``;
        every caller of a key must mean the same read)."""
        answer = self._next.get(key)
        if answer is None:
            answer = asyncio.get_running_loop().create_future()
            self._next[key] = answer
            if key not in self._senders:
                # A context of its own: the first caller's log fields and trace span must not
                # follow reads sent for callers long after it finished.
                self._senders[key] = asyncio.create_task(
                    self._send(key, fetch), context=contextvars.Context()
                )
        else:
            self.shared += 1
        # A caller that leaves (its client went away) does not cancel the others' read.
        result, error, traceback = await asyncio.shield(answer)
        if error is None:
            return result
        # Every caller of a failed read raises a copy of its exception, each from the traceback
        # the read had (where it failed, which is_redis_failure looks at): one object raised
        # in many tasks would collect every caller's frames and context.
        raise copy.copy(error).with_traceback(traceback)

    async def stop(self) -> None:
        """Cancel the reads in flight (their callers get the cancellation)."""
        senders = list(self._senders.values())
        for sender in senders:
            sender.cancel()
        await asyncio.gather(*senders, return_exceptions=True)

    async def _send(self, key: Hashable, fetch: Callable[[], Awaitable[Any]]) -> None:
        try:
            while (answer := self._next.pop(key, None)) is not None:
                # Popped before the read is sent: whoever comes from here on waits for the
                # next read, which will be sent after this one returns.
                self.reads += 1
                try:
                    result = await fetch()
                except asyncio.CancelledError:
                    answer.cancel()
                    raise
                except Exception as exc:
                    answer.set_result((None, exc, exc.__traceback__))
                else:
                    answer.set_result((result, None, None))
        finally:
            del self._senders[key]
            # Stopped (cancelled) with callers waiting: they get the cancellation too.
            leftover = self._next.pop(key, None)
            if leftover is not None:
                leftover.cancel()
