"""A job's stream entries, from its first to its terminal one, for the OpenAI translators.

The native SSE endpoint writes frames; the OpenAI endpoints need the entries themselves, one
by one, because their event numbering (Responses ``sequence_number``) is a function of the
entries in order and must not depend on how reads happened to merge them. The hand-over from
replay to the live feed is the one of ``service/viewer_stream.py``: join the job's shared
feed first, replay ``(0, cursor]`` from the feed's memory or Redis, then take the feed's
batches after the cursor.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator

from service.events import ZERO_ID, StreamId, format_stream_id
from service.fanout import FeedHub, JobFeed, Viewer
from service.frames import Entry, entries_from_reply
from service.keys import job_events_key
from service.redis_client import AnyRedis

REPLAY_PAGE = 1000


async def follow_entries(
    redis: AnyRedis, hub: FeedHub, job_id: str, *, idle_seconds: float
) -> AsyncGenerator[list[Entry], None]:
    """Every entry of the job's stream in order, in lists, until the terminal entry.

    Yields an empty list after ``idle_seconds`` without entries (time for a keepalive). Ends
    after the terminal entry, or early when this gateway ends the feed (shutdown, a reader too
    slow to keep up): the caller tells the two apart by the last entry's ``terminal``.
    Close it (``contextlib.aclosing``) to leave the feed.
    """
    viewer, cursor, _ = await hub.subscribe(job_id)
    try:
        if cursor > ZERO_ID:
            async for entries in _replay(redis, viewer.feed, cursor):
                yield entries
                if entries[-1].terminal:
                    return
        async for entries in _live(viewer, cursor, idle_seconds):
            yield entries
    finally:
        hub.unsubscribe(viewer)


async def _replay(redis: AnyRedis, feed: JobFeed, until: StreamId) -> AsyncIterator[list[Entry]]:
    """Entries ``(0, until]``: from the feed's memory when it holds them, else from Redis."""
    cached = feed.replay_entries(ZERO_ID, until)
    if cached is not None:
        for start in range(0, len(cached), REPLAY_PAGE):
            yield cached[start : start + REPLAY_PAGE]
        return
    key = job_events_key(feed.job_id)
    start_id = ZERO_ID
    end = format_stream_id(until)
    while start_id < until:
        raw = await redis.xrange(key, f"({format_stream_id(start_id)}", end, count=REPLAY_PAGE)
        entries = entries_from_reply(raw)
        if not entries:
            return
        yield entries
        start_id = entries[-1].id


async def _live(
    viewer: Viewer, position: StreamId, idle_seconds: float
) -> AsyncIterator[list[Entry]]:
    """The feed's entries after ``position`` until the terminal one (or the feed's end)."""
    while True:
        if not viewer.batches and not viewer.overflowed and viewer.closed_reason is None:
            viewer.wake.clear()
            try:
                await asyncio.wait_for(viewer.wake.wait(), timeout=idle_seconds)
            except TimeoutError:
                yield []
                continue
        if viewer.overflowed:
            return
        while viewer.batches:
            batch = viewer.batches.popleft()
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
