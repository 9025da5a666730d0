"""Durable Streams on Redis: each stream is four keys in one hash slot
(``service/contract/keys.py`` ``durable_stream_keys``), changed only by the ``ds_*.lua``
scripts. Its data is a Redis stream of one entry per append; an offset is the id of the
entry it follows. A fork's data is its own entries after its fork offset, read after its
source's (and its source's source's) entries up to it; a fork's reference on its source is
taken after the fork exists and dropped after it is gone, and a soft-deleted source goes with
its last fork. Those steps touch two slots, so they are separate commands, each atomic."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from service.contract.events import ZERO_ID, StreamId
from service.contract.keys import durable_stream_keys
from service.contract.store.redis_client import AnyRedis
from service.contract.store.scripts import Scripts, as_text
from service.gateway.durable_streams.errors import StreamError
from service.gateway.durable_streams.offsets import entry_id_text, parse_entry_id

# The most a read answers at once: a page ends at an append's boundary past these.
PAGE_ENTRIES = 1000
PAGE_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class StreamMeta:
    """A stream's configuration and state, as its metadata hash holds them."""

    name: str
    content_type: str
    generation: str
    tail: StreamId
    closed: bool
    ttl: int | None
    expires_at: str | None
    deadline_ms: int | None
    forked_from: str | None
    fork_offset: StreamId | None

    @classmethod
    def from_fields(cls, name: str, flat: Sequence[Any]) -> StreamMeta:
        """From an ``HGETALL`` reply as a flat list."""
        fields = {as_text(flat[i]): as_text(flat[i + 1]) for i in range(0, len(flat) - 1, 2)}
        return cls(
            name=name,
            content_type=fields.get("ct", ""),
            generation=fields.get("gen", ""),
            tail=parse_entry_id(fields.get("tail", "0-0")),
            closed=fields.get("closed") == "1",
            ttl=int(fields["ttl"]) if "ttl" in fields else None,
            expires_at=fields.get("exp"),
            deadline_ms=int(fields["deadline"]) if "deadline" in fields else None,
            forked_from=fields.get("from"),
            fork_offset=parse_entry_id(fields["fo"]) if "fo" in fields else None,
        )


@dataclass(frozen=True, slots=True)
class Page:
    """Data entries after a position: their bodies, the position after the last one, and
    whether the stream's end was reached (``more`` False) and found closed."""

    entries: list[bytes]
    next: StreamId
    more: bool
    closed: bool


@dataclass(frozen=True, slots=True)
class _Segment:
    key: str  # a data stream
    low: StreamId  # its entries start after this
    high: StreamId | None  # and end here (None: at its end)


def data_key(name: str) -> str:
    """The Redis stream holding a stream's own appends."""
    return durable_stream_keys(name)[1]


def new_generation() -> str:
    """A fresh id for a newly created stream (its ETags differ from a deleted namesake's)."""
    return secrets.token_hex(6)


def _reply(raw: Any) -> list[Any]:
    return list(raw)


class StreamStore:
    """The Redis side of the streams under ``/v1/stream/`` (jobs excepted)."""

    def __init__(self, redis: AnyRedis, scripts: Scripts) -> None:
        self._redis = redis
        self._scripts = scripts

    async def open(self, name: str, *, touch: bool) -> StreamMeta:
        """The stream's metadata (a read slides its TTL); 404 or 410 when it is not there."""
        reply = _reply(
            await self._scripts.ds_open(keys=durable_stream_keys(name), args=["1" if touch else ""])
        )
        status = as_text(reply[0])
        if status == "ok":
            return StreamMeta.from_fields(name, reply[1:])
        if status == "gone":
            await self.prune(name)
            raise StreamError(410, f"stream {name!r} was deleted; its forks still read it")
        await self.release(as_text(reply[1]), name)
        raise StreamError(404, f"no stream {name!r}")

    async def source(self, name: str) -> StreamMeta:
        """A fork's source, as the fork would start from it: 404 missing, 409 soft-deleted."""
        reply = _reply(
            await self._scripts.ds_fork_ref(keys=durable_stream_keys(name), args=["check"])
        )
        status = as_text(reply[0])
        if status == "ok":
            return StreamMeta.from_fields(name, reply[1:])
        if status == "soft":
            raise StreamError(409, f"the source stream {name!r} was deleted (its forks live on)")
        await self.release(as_text(reply[1]), name)
        raise StreamError(404, f"no source stream {name!r}")

    async def create(self, name: str, args: list[str | bytes]) -> list[str]:
        """Run ``ds_create.lua``; its reply as text (the entries it was given are not echoed)."""
        reply = [
            as_text(part)
            for part in await self._scripts.ds_create(keys=durable_stream_keys(name), args=args)
        ]
        await self.release(reply[-1], name)
        return reply

    async def reference(self, source: str, fork: str) -> None:
        """Take ``fork``'s reference on ``source`` (the fork exists by now)."""
        reply = _reply(
            await self._scripts.ds_fork_ref(keys=durable_stream_keys(source), args=["ref", fork])
        )
        status = as_text(reply[0])
        if status == "ok":
            return
        await self._drop(fork)
        if status == "soft":
            raise StreamError(409, f"the source stream {source!r} was deleted (its forks live on)")
        raise StreamError(404, f"no source stream {source!r}")

    async def append(self, name: str, args: list[str | bytes]) -> list[str]:
        """Run ``ds_append.lua``; its reply as text."""
        reply = [
            as_text(part)
            for part in await self._scripts.ds_append(keys=durable_stream_keys(name), args=args)
        ]
        if reply[0] == "missing":
            await self.release(reply[1], name)
        elif reply[0] == "gone":
            await self.prune(name)
        return reply

    async def delete(self, name: str) -> None:
        """Delete the stream (soft, while forks read it); 404 or 410 when it is not there."""
        reply = [
            as_text(part)
            for part in await self._scripts.ds_delete(
                keys=durable_stream_keys(name), args=await self._gone_forks(name)
            )
        ]
        status = reply[0]
        if status == "gone":
            raise StreamError(410, f"stream {name!r} was already deleted; its forks still read it")
        if status in ("deleted", "missing"):
            await self.release(reply[1], name)
        if status == "missing":
            raise StreamError(404, f"no stream {name!r}")

    async def _drop(self, fork: str) -> None:
        """Remove a fork whose source went away before the fork could reference it."""
        await self._scripts.ds_delete(keys=durable_stream_keys(fork), args=[])

    async def _gone_forks(self, name: str) -> list[str]:
        """The stream's forks that no longer exist (expired unseen, say)."""
        forks = [as_text(fork) for fork in await self._redis.smembers(durable_stream_keys(name)[3])]
        gone = []
        for fork in forks:
            if not await self._redis.exists(durable_stream_keys(fork)[0]):
                gone.append(fork)
        return gone

    async def prune(self, name: str) -> None:
        """Drop the references of forks that are gone from a soft-deleted stream (it goes with
        its last one)."""
        gone = await self._gone_forks(name)
        if gone:
            await self._unref(name, gone)

    async def release(self, source: str, fork: str) -> None:
        """Drop ``fork``'s reference on ``source``, and up the chain while sources go."""
        if source:
            await self._unref(source, [fork])

    async def _unref(self, source: str, forks: list[str]) -> None:
        while source:
            reply = _reply(
                await self._scripts.ds_fork_ref(
                    keys=durable_stream_keys(source), args=["unref", *forks]
                )
            )
            if as_text(reply[0]) != "deleted":
                return
            source, forks = as_text(reply[1]), [source]

    async def read(
        self, meta: StreamMeta, after: StreamId, *, limit_entries: int = PAGE_ENTRIES
    ) -> Page:
        """The data after ``after`` (a fork's inherited data first), a page at most."""
        entries: list[bytes] = []
        size = 0
        position = after
        closed = meta.closed
        for segment in await self._segments(meta):
            if segment.high is not None and segment.high <= position:
                continue
            while True:
                start = max(position, segment.low)
                end = entry_id_text(segment.high) if segment.high is not None else "+"
                count = limit_entries - len(entries) + 1
                raw: list[Any] = list(
                    await self._redis.xrange(
                        segment.key, f"({entry_id_text(start)}", end, count=count
                    )
                    or []
                )
                for entry_id, fields in raw:
                    if b"d" not in fields:
                        closed = True  # the closure's marker entry
                        continue
                    if len(entries) >= limit_entries or size >= PAGE_BYTES:
                        return Page(entries, position, True, False)
                    entries.append(fields[b"d"])
                    size += len(fields[b"d"])
                    position = parse_entry_id(entry_id)
                if len(raw) < count:
                    break
        if not entries and position < meta.tail:
            position = meta.tail
        return Page(entries, position, False, closed)

    async def first_entry_after(self, meta: StreamMeta, after: StreamId) -> bytes | None:
        """The data of the first append after ``after`` (a sub-offset fork splits it)."""
        page = await self.read(meta, after, limit_entries=1)
        return page.entries[0] if page.entries else None

    async def _segments(self, meta: StreamMeta) -> list[_Segment]:
        """Where a stream's data lives, oldest first: its sources' entries up to each fork
        offset, then its own."""
        segments = [_Segment(data_key(meta.name), meta.fork_offset or ZERO_ID, None)]
        source, cap = meta.forked_from, meta.fork_offset
        while source is not None and cap is not None:
            parent, offset = await self._redis.hmget(durable_stream_keys(source)[0], "from", "fo")
            low = parse_entry_id(offset) if offset is not None else ZERO_ID
            segments.append(_Segment(data_key(source), low, cap))
            source = as_text(parent) if parent is not None else None
            cap = min(cap, low)
        segments.reverse()
        return segments
