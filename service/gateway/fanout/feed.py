"""One job's feed in one gateway process: its cursor, its history while it fits (so resumes
replay from memory), and the hand-out of each new batch to its viewers."""

from __future__ import annotations

import asyncio
import bisect
import logging
import time

from service.contract.events import ZERO_ID, StreamId
from service.contract.keys import job_events_key
from service.contract.store.redis_client import AnyRedis, is_redis_failure
from service.gateway.fanout.batch import Batch, DirectWrites, batches_of
from service.gateway.fanout.direct_write import http_chunk
from service.gateway.fanout.frames import Entry, encode, entries_from_reply
from service.gateway.fanout.viewer import Viewer

log = logging.getLogger(__name__)

# The reason a viewer's stream starts over when the store lost what it had been sent.
STORE_ROLLBACK = "store_rollback"

# A replay of a live job sends the history's older batches as merged events (one per run of
# tokens) and only the last few batches as they were framed live. The split moves once per
# REPLAY_TAIL batches, so the viewers of a storm share one merged encoding.
REPLAY_TAIL = 64
MERGED_CACHE = 4  # merged encodings kept per feed, by batch range


class JobFeed:
    """One job's position, history and viewers in this process."""

    def __init__(
        self,
        redis: AnyRedis,
        job_id: str,
        history_limit: int,
        on_direct_writes: DirectWrites | None = None,
    ) -> None:
        self._redis = redis
        self._on_direct_writes = on_direct_writes
        self.job_id = job_id
        self.key = job_events_key(job_id)
        self.cursor: StreamId = ZERO_ID
        self.offset = 0  # the cursor entry's offset (0: unknown, nothing to check against)
        # Set when the store lost entries this feed had handed out (a failover to a lagging
        # replica, a restart from an older AOF): the feed is dropped, its viewers start over.
        self.rolled_back = False
        self.viewers: set[Viewer] = set()
        self.joins = 0  # viewers joined since its lane reader last looked (a crowd arriving)
        self.ended = False
        self._ready = asyncio.Event()
        # The stream from its start, as encoded batches, while it fits: resumes and late
        # joiners replay from here (joining ready-made frames) instead of each asking Redis
        # and re-encoding. Dropped for good after any Redis error.
        self._history: list[Batch] | None = None
        self._history_lasts: list[StreamId] = []
        self._history_entries = 0
        self._history_limit = history_limit
        self._merged: dict[tuple[int, int], bytes] = {}

    async def ready(self) -> None:
        """Wait until the cursor is set from Redis."""
        await self._ready.wait()

    @property
    def history_entries(self) -> int | None:
        """Entries held in memory; None when replays must ask Redis."""
        return None if self._history is None else self._history_entries

    def holds(self, position: StreamId) -> bool | None:
        """Whether the job's stream has an entry ``position``, from memory; None when memory
        cannot tell (no history kept, or past the cursor: another gateway may be ahead).

        The history is the stream from its start up to the cursor, and entries are only ever
        added after the last one, so up to the cursor it answers as an ``XRANGE`` would."""
        if self._history is None or self.rolled_back or position > self.cursor:
            return None
        index = bisect.bisect_left(self._history_lasts, position)
        if index == len(self._history):
            return False
        return any(entry.id == position for entry in self._history[index].entries)

    def replay(self, after: StreamId, until: StreamId) -> tuple[bytes, bool] | None:
        """Frames of the entries ``(after, until]`` and whether the last is terminal, from
        memory; None when memory does not hold them. ``until`` must be a batch boundary (the
        cursor a viewer got when it joined)."""
        if self._history is None:
            return None
        first = bisect.bisect_right(self._history_lasts, after)
        end = bisect.bisect_right(self._history_lasts, until)
        if first >= end:
            return b"", False
        history = self._history
        # A finished job's past is fixed: all of it is merged, the same bytes from any
        # gateway however its batches were read.
        split = end if history[end - 1].terminal else end - end % REPLAY_TAIL
        # A batch that ``after`` cuts as it was framed, then the batches up to the split
        # merged (one encoding shared by every viewer resuming there or earlier; from the
        # start of a finished job, the same bytes on every gateway), then the rest as framed.
        frames: list[bytes] = []
        start = first
        if history[first].prev != after:
            frames.append(history[first].after(after))
            start += 1
        if split > start:
            frames.append(self._merged_range(start, split))
            start = split
        frames += [batch.frames for batch in history[start:end]]
        return b"".join(frames), history[end - 1].terminal

    def _merged_range(self, start: int, stop: int) -> bytes:
        """History batches ``start..stop-1`` encoded with every run of tokens merged into one
        event: far fewer bytes than the live frames."""
        key = (start, stop)
        merged = self._merged.get(key)
        if merged is None:
            assert self._history is not None
            entries = [entry for batch in self._history[start:stop] for entry in batch.entries]
            merged = encode(entries)
            if len(self._merged) >= MERGED_CACHE:
                del self._merged[next(iter(self._merged))]
            self._merged[key] = merged
        return merged

    def replay_entries(self, after: StreamId, until: StreamId) -> list[Entry] | None:
        """The entries ``(after, until]`` from memory, for readers that re-encode them (the
        OpenAI-compatible streams); None when memory does not hold them."""
        if self._history is None:
            return None
        first = bisect.bisect_right(self._history_lasts, after)
        end = bisect.bisect_right(self._history_lasts, until)
        return [
            entry
            for batch in self._history[first:end]
            for entry in batch.entries
            if after < entry.id <= until
        ]

    async def load(self) -> None:
        """Set the cursor to the stream's last entry (loading the history if it fits)."""
        while True:
            try:
                last = await self._load()
                break
            except Exception as exc:
                # Viewers wait for this load: it retries whatever failed, like a lane reader.
                if is_redis_failure(exc):
                    log.warning(
                        "feed cannot reach redis", extra={"job_id": self.job_id, "error": repr(exc)}
                    )
                else:
                    log.exception("feed load crashed; retrying", extra={"job_id": self.job_id})
                await asyncio.sleep(0.5)
        if last is not None:
            self.cursor = last.id
            self.offset = last.offset
            self.ended = last.terminal
        self._ready.set()

    async def _load(self) -> Entry | None:
        entries = entries_from_reply(
            await self._redis.xrange(self.key, count=self._history_limit + 1)
        )
        if len(entries) <= self._history_limit:
            self._history = batches_of(entries, ZERO_ID)
            self._history_lasts = [batch.last for batch in self._history]
            self._history_entries = len(entries)
            return entries[-1] if entries else None
        tail = entries_from_reply(await self._redis.xrevrange(self.key, count=1))
        return tail[0] if tail else None

    def deliver(self, entries: list[Entry]) -> None:
        """Hand entries read after the cursor to every viewer, as one batch."""
        if entries[0].id <= self.cursor:
            # A read issued for an earlier feed of the same job (dropped and re-created
            # while the lane's XREAD was blocked) starts before this feed's cursor.
            entries = [entry for entry in entries if entry.id > self.cursor]
            if not entries:
                return
        if self.offset and entries[0].offset and entries[0].offset != self.offset + 1:
            # Offsets count every entry of the stream: another one than the next means the
            # store went back in time, and what the viewers have may never have happened.
            self.roll_back(f"offset {entries[0].offset} after {self.offset}")
            return
        frames = encode(entries)
        batch = Batch(
            prev=self.cursor,
            last=entries[-1].id,
            entries=entries,
            frames=frames,
            terminal=entries[-1].terminal,
        )
        self._remember(batch)
        self.cursor = batch.last
        self.offset = entries[-1].offset
        self.ended = batch.terminal
        now = time.monotonic()
        # The bytes a direct write sends, framed once for every viewer.
        chunk = http_chunk(frames)
        written = 0
        for viewer in self.viewers:
            written += viewer.offer(batch, chunk, now)
        if written and self._on_direct_writes is not None:
            self._on_direct_writes(batch, written)

    def redis_failed(self) -> None:
        """Redis may come back with less than it had: from now on replays ask Redis."""
        self._history = None
        self._history_lasts = []
        self._merged.clear()

    def check_position(self, last: Entry | None) -> None:
        """Compare the stream's last entry, read after a Redis failure, with the cursor: a
        stream that ends before it (or lost its epoch's offsets) was rolled back."""
        if self.cursor == ZERO_ID or self.rolled_back:
            return
        if (
            last is None
            or last.id < self.cursor
            or (last.id == self.cursor and self.offset and last.offset != self.offset)
        ):
            self.roll_back("the stream ends before the feed's cursor")

    def roll_back(self, why: str) -> None:
        """The store lost entries this feed handed out: every viewer starts over (``reset``,
        reason ``store_rollback``, then the stream as it now is)."""
        log.warning("job stream rolled back", extra={"job_id": self.job_id, "why": why})
        self.rolled_back = True
        self.redis_failed()
        self.close_viewers(STORE_ROLLBACK)

    def close_viewers(self, reason: str) -> None:
        """End every viewer's stream; they reconnect and resume from Redis."""
        for viewer in self.viewers:
            viewer.close(reason)

    def _remember(self, batch: Batch) -> None:
        if self._history is None:
            return
        self._history_entries += len(batch.entries)
        if self._history_entries > self._history_limit:
            self.redis_failed()  # too long to keep: replays ask Redis
            return
        self._history.append(batch)
        self._history_lasts.append(batch.last)
