"""The one replay pager: a job's entries in a range, from its feed's memory when that holds
them, else from Redis a page at a time. The SSE viewers and the OpenAI streams both use it."""

from __future__ import annotations

from collections.abc import AsyncIterator

from service.contract.events import StreamId, format_stream_id
from service.contract.keys import job_events_key
from service.contract.store.redis_client import AnyRedis
from service.gateway.fanout.feed import JobFeed
from service.gateway.fanout.frames import Entry, entries_from_reply

# Entries per page: one XRANGE each, and the most a replay holds in memory at once.
REPLAY_PAGE = 1000


async def replay_pages(
    redis: AnyRedis, feed: JobFeed, after: StreamId, until: StreamId
) -> AsyncIterator[list[Entry]]:
    """The entries ``(after, until]`` in non-empty pages, oldest first; stops early at the end
    of the stream (a range that Redis no longer holds in full)."""
    cached = feed.replay_entries(after, until)
    if cached is not None:
        for start in range(0, len(cached), REPLAY_PAGE):
            yield cached[start : start + REPLAY_PAGE]
        return
    key = job_events_key(feed.job_id)
    end = format_stream_id(until)
    while after < until:
        raw = await redis.xrange(key, f"({format_stream_id(after)}", end, count=REPLAY_PAGE)
        entries = entries_from_reply(raw)
        if not entries:
            return
        yield entries
        after = entries[-1].id
