"""A job's stream entries, from its first to its terminal one, for the OpenAI translators.

The native SSE endpoint writes frames; the OpenAI endpoints need the entries themselves, one
by one, because their event numbering (Responses ``sequence_number``) is a function of the
entries in order and must not depend on how reads happened to merge them. The hand-over from
replay to the live feed is the one of ``service/gateway/fanout/viewer_stream.py``: join the
job's shared feed first, replay ``(0, cursor]`` from the feed's memory or Redis, then take the
feed's batches after the cursor (``service/gateway/fanout/follow.py``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator

from service.contract.events import ZERO_ID
from service.contract.store.redis_client import AnyRedis
from service.gateway.fanout.follow import live_entries
from service.gateway.fanout.frames import Entry
from service.gateway.fanout.hub import FeedHub
from service.gateway.fanout.replay import replay_pages
from service.gateway.presence import ViewerCounts


async def follow_entries(
    redis: AnyRedis, hub: FeedHub, job_id: str, *, idle_seconds: float, counts: ViewerCounts
) -> AsyncGenerator[list[Entry], None]:
    """Every entry of the job's stream in order, in lists, until the terminal entry.

    Yields an empty list after ``idle_seconds`` without entries (time for a keepalive). Ends
    after the terminal entry, or early when this gateway ends the feed (shutdown, a reader too
    slow to keep up): the caller tells the two apart by the last entry's ``terminal``.
    Close it (``contextlib.aclosing``) to leave the feed. The reader counts as a viewer of the
    job in ``counts`` meanwhile (a job with ``on_abandon: "cancel"`` lives while it reads).
    """
    with counts.watching(job_id):
        async with contextlib.aclosing(_follow(redis, hub, job_id, idle_seconds)) as entries:
            async for batch in entries:
                yield batch


async def _follow(
    redis: AnyRedis, hub: FeedHub, job_id: str, idle_seconds: float
) -> AsyncGenerator[list[Entry], None]:
    subscription = await hub.subscribe(job_id)
    viewer, cursor = subscription.viewer, subscription.cursor
    try:
        if cursor > ZERO_ID:
            async for entries in replay_pages(redis, subscription.feed, ZERO_ID, cursor):
                yield entries
                if entries[-1].terminal:
                    return
        async for entries in live_entries(viewer, cursor, idle_seconds):
            yield entries
    finally:
        hub.unsubscribe(subscription)
