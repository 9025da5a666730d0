"""The queue as an operator sees it: what waits, what runs, who consumes, what is dead.

Read by the ``tokenrelay_queue_*`` gauges at every scrape and by ``tokenrelay jobs queue``. The
queue is several partition streams (``service/contract/keys.py``); each is read on its own (a
cluster keeps them on different nodes) and the figures are added up.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from redis.exceptions import ResponseError

from service.contract.events import parse_stream_id
from service.contract.jobs import now_ms
from service.contract.keys import QUEUE_GROUP, dead_letter_key, queue_keys
from service.contract.store.redis_client import AnyRedis
from service.contract.store.scripts import as_text


@dataclass(frozen=True, slots=True)
class ConsumerStatus:
    """One worker of the consumer group, as Redis last saw it (over every partition)."""

    name: str
    pending: int
    idle_seconds: float


@dataclass(frozen=True, slots=True)
class PartitionStatus:
    """One queue partition and its consumer group."""

    key: str
    length: int  # entries: waiting, plus running (acknowledged entries are deleted)
    waiting: int  # not yet delivered to any worker: the group's lag
    pending: int  # delivered and not acknowledged: running, or held by a worker that died
    oldest_waiting_seconds: float  # age of the oldest entry no worker took yet; 0 when none
    last_delivered_id: str | None  # None: no group yet (no worker ever ran)


@dataclass(frozen=True, slots=True)
class QueueStatus:
    """Every partition, the consumers and the dead-letter stream at one moment."""

    partitions: tuple[PartitionStatus, ...]
    consumers: tuple[ConsumerStatus, ...]
    dead_letters: int

    @property
    def length(self) -> int:
        """Entries in all partitions."""
        return sum(p.length for p in self.partitions)

    @property
    def waiting(self) -> int:
        """Entries no worker has taken yet."""
        return sum(p.waiting for p in self.partitions)

    @property
    def pending(self) -> int:
        """Entries taken and not acknowledged."""
        return sum(p.pending for p in self.partitions)

    @property
    def oldest_waiting_seconds(self) -> float:
        """Age of the oldest entry no worker has taken yet."""
        return max((p.oldest_waiting_seconds for p in self.partitions), default=0.0)

    def active_consumers(self, within_seconds: float) -> int:
        """Workers that talked to the queue within ``within_seconds`` (a live worker polls
        every 2 s and renews its leases every ``LEASE_SECONDS/3``)."""
        return sum(1 for consumer in self.consumers if consumer.idle_seconds <= within_seconds)

    def to_json(self) -> dict[str, Any]:
        """The shape ``tokenrelay jobs queue --json`` prints."""
        return {
            "length": self.length,
            "waiting": self.waiting,
            "pending": self.pending,
            "oldest_waiting_seconds": round(self.oldest_waiting_seconds, 3),
            "dead_letters": self.dead_letters,
            "partitions": [
                {
                    "key": p.key,
                    "length": p.length,
                    "waiting": p.waiting,
                    "pending": p.pending,
                    "oldest_waiting_seconds": round(p.oldest_waiting_seconds, 3),
                    "last_delivered_id": p.last_delivered_id,
                }
                for p in self.partitions
            ],
            "consumers": [
                {"name": c.name, "pending": c.pending, "idle_seconds": round(c.idle_seconds, 3)}
                for c in self.consumers
            ],
        }


async def read_queue_status(redis: AnyRedis) -> QueueStatus:
    """Every partition concurrently, then the consumers merged by name."""
    results = await asyncio.gather(*(_read_partition(redis, key) for key in queue_keys()))
    dead = int(await redis.xlen(dead_letter_key()))
    partitions: list[PartitionStatus] = []
    merged: dict[str, ConsumerStatus] = {}
    for partition, consumers in results:
        partitions.append(partition)
        for consumer in consumers:
            seen = merged.get(consumer.name)
            if seen is not None:
                consumer = ConsumerStatus(
                    consumer.name,
                    seen.pending + consumer.pending,
                    min(seen.idle_seconds, consumer.idle_seconds),
                )
            merged[consumer.name] = consumer
    return QueueStatus(tuple(partitions), tuple(merged.values()), dead)


async def _read_partition(
    redis: AnyRedis, key: str
) -> tuple[PartitionStatus, list[ConsumerStatus]]:
    length = int(await redis.xlen(key))
    try:
        groups: Any = await redis.xinfo_groups(key)
    except ResponseError:  # the stream does not exist yet
        oldest = await _oldest_after(redis, key, "-")
        return PartitionStatus(key, length, length, 0, oldest, None), []
    group = next((g for g in groups if as_text(g["name"]) == QUEUE_GROUP), None)
    if group is None:
        oldest = await _oldest_after(redis, key, "-")
        return PartitionStatus(key, length, length, 0, oldest, None), []
    pending = int(group["pending"])
    lag = group.get("lag")
    # Redis cannot always tell the lag (entries deleted after the group's position): then every
    # entry not pending is waiting, since acknowledged entries are deleted with their ack.
    waiting = int(lag) if lag is not None else max(0, length - pending)
    last = as_text(group["last-delivered-id"])
    oldest = await _oldest_after(redis, key, f"({last}") if waiting else 0.0
    consumers: Any = await redis.xinfo_consumers(key, QUEUE_GROUP)
    return PartitionStatus(key, length, waiting, pending, oldest, last), [
        ConsumerStatus(as_text(c["name"]), int(c["pending"]), int(c["idle"]) / 1000)
        for c in consumers
    ]


async def _oldest_after(redis: AnyRedis, key: str, start: str) -> float:
    """Seconds since the first entry after ``start`` was added (its id holds the time)."""
    entries: Any = await redis.xrange(key, start, "+", count=1)
    if not entries:
        return 0.0
    added_ms = parse_stream_id(as_text(entries[0][0]))[0]
    return max(0.0, (now_ms() - added_ms) / 1000)
