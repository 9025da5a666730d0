"""``Stream-Cursor`` for live reads (protocol section 10.1): the number of the current
20-second interval since 2024-10-09T00:00:00Z, and never one a client already sent back (then
it moves on by a random 1 to 3600 seconds' worth of intervals), so caches in front of the
gateway cannot serve one long-poll answer forever."""

from __future__ import annotations

import math
import random
import time

EPOCH_SECONDS = 1_728_432_000  # 2024-10-09T00:00:00Z
INTERVAL_SECONDS = 20


def response_cursor(client_cursor: str | None, *, now: float | None = None) -> str:
    """The cursor to answer a live read that echoed ``client_cursor``."""
    current = int(((time.time() if now is None else now) - EPOCH_SECONDS) // INTERVAL_SECONDS)
    if not client_cursor or not client_cursor.isdigit():
        return str(current)
    echoed = int(client_cursor)
    if echoed < current:
        return str(current)
    jitter_seconds = random.randint(1, 3600)
    return str(echoed + max(1, math.ceil(jitter_seconds / INTERVAL_SECONDS)))
