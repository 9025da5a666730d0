"""One viewer's stream: replay from Redis after its position, then the shared live feed.

The hand-over is exact because the viewer joins the feed *before* replaying: the feed
reports its cursor ``C`` at that instant and delivers every batch after ``C`` to the viewer.
The viewer replays ``(position, C]`` from Redis, then takes the feed's batches, skipping
what it already has and splitting a batch that straddles its position. Its position only
moves forward, so nothing is sent twice and nothing is skipped. Once caught up, the feed
writes batches that start exactly at the position straight to the socket (``Viewer.offer``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from service.contract.events import RESET, ZERO_ID, StreamId, format_stream_id
from service.contract.keys import job_events_key
from service.contract.store.redis_client import AnyRedis
from service.gateway.fanout.direct_write import DirectSink
from service.gateway.fanout.feed import STORE_ROLLBACK, JobFeed
from service.gateway.fanout.frames import PING, encode, frame
from service.gateway.fanout.hub import FeedHub, Subscription
from service.gateway.fanout.replay import replay_pages
from service.gateway.fanout.viewer import Viewer, ViewerEnd

log = logging.getLogger(__name__)

Write = Callable[[bytes], Awaitable[None]]


@dataclass(slots=True)
class StreamOutcome:
    """How a viewer's stream ended, for logs and metrics."""

    reason: str  # "terminal", "slow_viewer", "shutdown", "feed_ended"
    events_bytes: int


async def position_known(redis: AnyRedis, job_id: str, position: StreamId) -> bool:
    """Whether the job's stream holds the entry a viewer resumes after (asks Redis)."""
    if position == ZERO_ID:
        return True
    text = format_stream_id(position)
    return bool(await redis.xrange(job_events_key(job_id), text, text, count=1))


async def _position_in_stream(
    redis: AnyRedis, subscription: Subscription, position: StreamId, terminal_id: StreamId | None
) -> bool:
    """:func:`position_known`, answered from the feed's memory when it holds the stream up to
    the position (a reconnect storm: thousands of resumes, no round trip each). An ended
    feed answers only while the job record still ends where it does (not run again since)."""
    feed = subscription.feed
    if position == ZERO_ID:
        return True
    if not subscription.ended or subscription.cursor == terminal_id:
        held = feed.holds(position)
        if held is not None:
            return held
    return await position_known(redis, feed.job_id, position)


async def stream_to_viewer(
    redis: AnyRedis,
    hub: FeedHub,
    job_id: str,
    position: StreamId,
    end: ViewerEnd,
    *,
    sink: DirectSink | None = None,
    terminal_id: StreamId | None = None,
) -> StreamOutcome:
    """Send the viewer every event after ``position`` until the job's terminal event.

    Everything goes through ``end.write``, except that with a ``sink`` live batches may be
    written by the feed directly (the hub's ``on_direct_writes`` counts them); the hub's sweeper
    calls ``end.abort`` for a viewer whose write has been stuck too long. ``terminal_id`` is
    the job record's terminal entry, if it has ended.

    A waiting viewer holds this one coroutine frame (the replay and each round of writes are
    helpers that return before it waits again): with thousands of idle viewers, every frame
    and closure kept while they wait is memory per viewer.
    """
    sent = 0
    check_position = True
    while True:
        subscription = await hub.subscribe(job_id, terminal_id)
        viewer = subscription.viewer
        viewer.end = end
        viewer.sink = sink
        try:
            if check_position:
                check_position = False
                if not await _position_in_stream(redis, subscription, position, terminal_id):
                    # The position is not in the stream (lost in Redis, or never there): say
                    # so, and replay the whole job after an explicit reset instead of leaving
                    # a silent gap.
                    await viewer.send(
                        frame(position, RESET, b'{"attempt":0,"reason":"unknown_position"}')
                    )
                    position = ZERO_ID
            outcome = await _catch_up(redis, subscription, position)
            while outcome is None:
                if viewer.quiet:
                    viewer.idle = True
                    viewer.waiter = waiter = asyncio.get_running_loop().create_future()
                    try:
                        await waiter
                    finally:
                        viewer.idle = False
                        viewer.waiter = None
                outcome = await _write_pending(viewer)
        finally:
            hub.unsubscribe(subscription)
            sent += viewer.sent + viewer.direct_bytes
        if outcome != STORE_ROLLBACK:
            return StreamOutcome(outcome, sent)
        # The store lost entries this viewer was sent: start over, visibly, from the stream
        # as it now is (the reset's id 0-0 makes a reconnect start over too).
        reset = frame(ZERO_ID, RESET, b'{"attempt":0,"reason":"store_rollback"}')
        sent += len(reset)
        await end.write(reset)
        position, terminal_id = ZERO_ID, None


async def _catch_up(redis: AnyRedis, subscription: Subscription, position: StreamId) -> str | None:
    """Replay ``(position, cursor]``; "terminal" if the job's end was among it, else None and
    the viewer's position is set for the live batches."""
    cursor = subscription.cursor
    if position < cursor:
        send = subscription.viewer.send
        if await _replay(redis, subscription.feed, position, cursor, send):
            return "terminal"
        position = cursor
    elif subscription.ended:
        return "terminal"
    subscription.viewer.position = position
    return None


async def _replay(
    redis: AnyRedis, feed: JobFeed, after: StreamId, until: StreamId, send: Write
) -> bool:
    """Send entries ``(after, until]`` merged; true if the job's terminal entry was among them.

    From the feed's memory when it holds them, else from Redis in pages.
    """
    cached = feed.replay(after, until)
    if cached is not None:
        frames, terminal = cached
        if frames:
            await send(frames)
        return terminal
    async for entries in replay_pages(redis, feed, after, until):
        await send(encode(entries))
        if entries[-1].terminal:
            return True
    return False


async def _write_pending(viewer: Viewer) -> str | None:
    """After a wake-up: write the feed's batches after the viewer's position, or a ping when
    the hub's sweeper asked for one (only after a quiet spell: no timer per viewer); how the
    stream ended, or None to wait again. While the viewer waits, the feed may write batches
    for it itself (``Viewer.offer``)."""
    if viewer.finished:
        return "terminal"
    if viewer.overflowed:
        return "slow_viewer"
    if viewer.needs_ping and not viewer.batches:
        viewer.needs_ping = False
        await viewer.send(PING)
        return None
    chunks: list[bytes] = []
    terminal = False
    batches, viewer.batches = viewer.batches, []
    for batch in batches:
        data = batch.after(viewer.position)
        if data:
            chunks.append(data)
        viewer.position = max(viewer.position, batch.last)
        if batch.terminal:
            terminal = True
            break
    if chunks:
        # A viewer's pending frames go out in one write.
        await viewer.send(b"".join(chunks))
    if terminal:
        return "terminal"
    if viewer.closed_reason is not None and not viewer.batches:
        return viewer.closed_reason
    return None
