"""What ``tokenrelay jobs`` reads from Redis: the jobs in the queue (waiting and running), one
job in full, and the dead letters."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import orjson
from redis.exceptions import ResponseError

from service.contract.events import parse_stream_id
from service.contract.jobs import now_ms
from service.contract.keys import (
    QUEUE_GROUP,
    dead_letter_key,
    job_events_key,
    job_output_key,
    job_record_key,
    queue_key_for,
    queue_keys,
)
from service.contract.store.job_reader import job_not_found
from service.contract.store.redis_client import AnyRedis
from service.contract.store.requeue import DeadLetter
from service.contract.store.scripts import as_text
from service.gateway.presence import viewers_by_job

_LIST_FIELDS = ("status", "attempt", "worker", "created_at", "model", "deliveries")


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """A queue entry and, once a worker took it, who holds it."""

    queue: str
    id: str
    job_id: str
    consumer: str | None = None
    idle_seconds: float | None = None
    deliveries: int = 0


async def queue_entries(redis: AnyRedis, limit: int) -> list[QueueEntry]:
    """Every entry of every partition (up to ``limit`` each), oldest first."""
    per_partition = await asyncio.gather(*(_partition(redis, key, limit) for key in queue_keys()))
    entries = [entry for partition in per_partition for entry in partition]
    return sorted(entries, key=lambda e: parse_stream_id(e.id))


async def _partition(redis: AnyRedis, key: str, limit: int) -> list[QueueEntry]:
    raw: Any = await redis.xrange(key, count=limit)
    if not raw:
        return []
    try:
        pending: Any = await redis.xpending_range(key, QUEUE_GROUP, "-", "+", limit)
    except ResponseError as exc:  # no group yet: nothing is pending
        if "NOGROUP" not in str(exc):
            raise
        pending = []
    held = {as_text(p["message_id"]): p for p in pending}
    entries = []
    for entry_id, fields in raw:
        entry = as_text(entry_id)
        job = fields.get(b"job")
        job_id = as_text(job) if job else "q" + entry.replace("-", "_")
        holder = held.get(entry)
        if holder is None:
            entries.append(QueueEntry(key, entry, job_id))
            continue
        idle = int(holder["time_since_delivered"]) / 1000
        consumer = as_text(holder["consumer"])
        entries.append(
            QueueEntry(key, entry, job_id, consumer, idle, int(holder["times_delivered"]))
        )
    return entries


async def list_jobs(redis: AnyRedis, limit: int = 1000) -> list[dict[str, Any]]:
    """The jobs in the queue, running first then waiting, oldest first within each."""
    entries = await queue_entries(redis, limit)
    viewers = await viewers_by_job(redis)
    async with redis.pipeline(transaction=False) as pipe:
        for entry in entries:
            pipe.hmget(job_record_key(entry.job_id), *_LIST_FIELDS)
            pipe.strlen(job_output_key(entry.job_id))
        replies = await pipe.execute()
    now = now_ms()
    rows = []
    for index, entry in enumerate(entries):
        values, output_bytes = replies[2 * index], replies[2 * index + 1]
        record = {
            name: as_text(v) if v is not None else None
            for name, v in zip(_LIST_FIELDS, values, strict=True)
        }
        created = int(record["created_at"]) if record["created_at"] else None
        rows.append(
            {
                "id": entry.job_id,
                "status": record["status"] or "not created yet",
                "age_seconds": round((now - created) / 1000, 1) if created else None,
                "attempt": int(record["attempt"] or 0),
                "worker": record["worker"] or entry.consumer,
                "output_bytes": int(output_bytes or 0),
                "viewers": viewers.get(entry.job_id, 0),
                "model": record["model"],
                "deliveries": int(record["deliveries"] or 0),
                "queue_entry": entry.id,
                "held_by": entry.consumer,
                "idle_seconds": entry.idle_seconds,
            }
        )
    rows.sort(key=_running_then_oldest)
    return rows


def _running_then_oldest(row: dict[str, Any]) -> tuple[bool, float]:
    age: float = row["age_seconds"] or 0.0
    return row["status"] != "running", -age


async def show_job(redis: AnyRedis, job_id: str) -> dict[str, Any]:
    """One job: its whole record, progress, queue entry and viewers."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(job_record_key(job_id))
        pipe.strlen(job_output_key(job_id))
        pipe.xlen(job_events_key(job_id))
        raw, output_bytes, events = await pipe.execute()
    if not raw:
        raise job_not_found(job_id)
    record: dict[str, Any] = {as_text(k): as_text(v) for k, v in raw.items()}
    for name in ("request", "usage", "error"):
        if record.get(name):
            record[name] = orjson.loads(record[name])
    for name in ("attempt", "deliveries", "seq"):
        if name in record:
            record[name] = int(record[name])
    now = now_ms()
    if record.get("created_at"):
        record["age_seconds"] = round((now - int(record["created_at"])) / 1000, 1)
    record["output_bytes"] = int(output_bytes or 0)
    record["events"] = int(events or 0)
    record["viewers"] = (await viewers_by_job(redis)).get(job_id, 0)
    record["queue_entry"] = await _queue_entry_of(redis, job_id, record.get("entry"))
    return record


async def _queue_entry_of(
    redis: AnyRedis, job_id: str, entry_id: str | None
) -> dict[str, Any] | None:
    """The job's entry in its queue partition while it waits or runs."""
    key = queue_key_for(job_id)
    for entry in await _partition(redis, key, 10_000):
        if entry.id == entry_id or (entry_id is None and entry.job_id == job_id):
            return {
                "queue": key,
                "id": entry.id,
                "held_by": entry.consumer,
                "idle_seconds": entry.idle_seconds,
                "deliveries": entry.deliveries,
            }
    return None


async def dead_letters(redis: AnyRedis, limit: int = 100) -> list[dict[str, Any]]:
    """The newest dead letters first, with their job's status now."""
    raw: Any = await redis.xrevrange(dead_letter_key(), count=limit)
    letters = [DeadLetter(as_text(entry_id), dict(fields)) for entry_id, fields in raw]
    statuses: list[Any] = []
    if letters:
        async with redis.pipeline(transaction=False) as pipe:
            for letter in letters:
                pipe.hget(job_record_key(letter.job_id or "-"), "status")
            statuses = await pipe.execute()
    now = now_ms()
    return [
        {
            "id": letter.id,
            "age_seconds": round((now - parse_stream_id(letter.id)[0]) / 1000, 1),
            "job": letter.job_id,
            "reason": letter.reason,
            "job_status": as_text(status) if status is not None else None,
            "entry": as_text(letter.fields.get(b"entry", b"")) or None,
        }
        for letter, status in zip(letters, statuses, strict=True)
    ]
