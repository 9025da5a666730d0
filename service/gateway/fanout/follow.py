"""Following a job's feed entry by entry, for readers that consume entries rather than SSE
frames (the OpenAI translators, the Durable Streams job reader): the batches a subscribed
viewer gets after its position, as lists of entries, until the terminal one.

The hand-over is the one of ``viewer_stream.py``: join the feed first (``FeedHub.subscribe``),
replay up to the cursor it reported (``replay.py``), then take the batches after it here."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from service.contract.events import StreamId
from service.gateway.fanout.frames import Entry
from service.gateway.fanout.viewer import Viewer


async def live_entries(
    viewer: Viewer, position: StreamId, idle_seconds: float
) -> AsyncIterator[list[Entry]]:
    """The feed's entries after ``position`` until the terminal one (or the feed's end: a
    shutdown, a viewer too slow to keep up). Yields an empty list after ``idle_seconds``
    without entries (time for a keepalive)."""
    while True:
        quiet = not viewer.batches and not viewer.overflowed and viewer.closed_reason is None
        if quiet and not await _woken(viewer, idle_seconds):
            yield []
            continue
        if viewer.overflowed:
            return
        # Taken all at once (the feed queues new ones on a fresh list meanwhile): popping
        # the head of a list one by one would cost O(n) each.
        batches, viewer.batches = viewer.batches, []
        for batch in batches:
            if batch.last <= position:
                continue
            entries = batch.entries
            if position > batch.prev:
                entries = [entry for entry in entries if entry.id > position]
            position = batch.last
            yield entries
            if batch.terminal:
                return
        if viewer.closed_reason is not None:
            return


async def _woken(viewer: Viewer, seconds: float) -> bool:
    """Wait until the feed wakes the viewer (``Viewer.wake``); False after ``seconds``."""
    viewer.waiter = waiter = asyncio.get_running_loop().create_future()
    try:
        await asyncio.wait_for(waiter, seconds)
    except TimeoutError:
        return False
    finally:
        viewer.waiter = None
    return True
