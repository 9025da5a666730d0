"""Reconnect delays: exponential with full jitter, and a limit on how long to keep trying."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass

from client.errors import ConnectionLost


@dataclass(frozen=True, slots=True)
class Backoff:
    """Waits ``initial`` doubling up to ``maximum`` (jittered) and gives up after
    ``give_up_after`` seconds without a working connection."""

    initial: float = 0.1
    maximum: float = 5.0
    give_up_after: float = 120.0

    def start(self) -> Retrying:
        """A fresh sequence of waits."""
        return Retrying(self)


class Retrying:
    """One sequence of reconnect waits; :meth:`succeeded` starts it over."""

    def __init__(self, policy: Backoff) -> None:
        self._policy = policy
        self._failures = 0
        self._since: float | None = None

    def succeeded(self) -> None:
        """A connection worked: the next failure waits ``initial`` again."""
        self._failures = 0
        self._since = None

    async def wait(self, reason: str) -> None:
        """Sleep before the next try; raise :class:`ConnectionLost` past the limit."""
        now = time.monotonic()
        if self._since is None:
            self._since = now
        elif now - self._since > self._policy.give_up_after:
            raise ConnectionLost(
                f"no working connection for {self._policy.give_up_after:g} s (last: {reason})"
            )
        ceiling = min(self._policy.maximum, self._policy.initial * 2**self._failures)
        self._failures += 1
        await asyncio.sleep(random.uniform(ceiling / 2, ceiling))
