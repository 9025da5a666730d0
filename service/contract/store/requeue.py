"""Bringing a dead-lettered job back: reset it (one script on the job's keys), enqueue it, then
remove the dead letter. Each step is safe to repeat, so an interrupted requeue is finished by
running it again."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from service.contract.errors import Conflict, NotFound
from service.contract.events import parse_stream_id
from service.contract.jobs import now_ms
from service.contract.keys import (
    dead_letter_key,
    job_keys,
    job_raw_output_key,
    job_record_key,
    job_tombstone_key,
    queue_key_for,
)
from service.contract.settings import Settings
from service.contract.store.job_reader import missing_job
from service.contract.store.redis_client import AnyRedis
from service.contract.store.scripts import Scripts, as_text

# Fields the runner adds to a dead letter; the rest is the original queue entry.
_DEAD_LETTER_FIELDS = (b"entry", b"reason")


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One entry of ``tr:dead``."""

    id: str
    fields: dict[bytes, bytes]

    @property
    def job_id(self) -> str | None:
        """The job it names; a ``request`` entry without ``job`` is named after its entry."""
        job = self.fields.get(b"job")
        if job:
            return job.decode()
        entry = self.fields.get(b"entry")
        if b"request" in self.fields and entry:
            return "q" + entry.decode().replace("-", "_")
        return None

    @property
    def reason(self) -> str:
        """Why it was dead-lettered."""
        return self.fields.get(b"reason", b"").decode("utf-8", errors="replace")

    @property
    def is_request(self) -> bool:
        """Whether it is a queue entry whose request never became a job."""
        return b"request" in self.fields


@dataclass(frozen=True, slots=True)
class Requeued:
    """What a requeue did."""

    dead_letter: str
    job_id: str
    queue_entry: str | None  # None: the job had been requeued already
    note: str


async def find_dead_letter(redis: AnyRedis, ref: str) -> DeadLetter:
    """The dead letter with entry id ``ref``, or the latest one naming job ``ref``."""
    try:
        parse_stream_id(ref)
    except ValueError:
        entries: Any = await redis.xrevrange(dead_letter_key(), count=10_000)
        for entry_id, fields in entries:
            letter = DeadLetter(as_text(entry_id), dict(fields))
            if letter.job_id == ref:
                return letter
        raise NotFound(f"no dead letter names job {ref!r}", code="dead_letter_not_found") from None
    found: Any = await redis.xrange(dead_letter_key(), ref, ref)
    if not found:
        raise NotFound(
            f"no dead letter {ref!r} in {dead_letter_key()}", code="dead_letter_not_found"
        )
    return DeadLetter(ref, dict(found[0][1]))


async def requeue(
    redis: AnyRedis, scripts: Scripts, settings: Settings, letter: DeadLetter
) -> Requeued:
    """Run the dead-lettered job (or request) again; the dead letter is removed at the end."""
    if letter.is_request:
        return await _requeue_request(redis, letter)
    job_id = letter.job_id
    if job_id is None:
        raise Conflict(f"dead letter {letter.id} names no job: nothing to run ({letter.reason})")
    ttl = max(settings.retention_seconds, settings.unfinished_job_seconds)
    keys = [*job_keys(job_id), job_raw_output_key(job_id)]
    reply = await scripts.requeue_job(keys=keys, args=[letter.id, now_ms(), ttl])
    outcome = as_text(reply[0])
    if outcome == "missing":
        raise await missing_job(redis, settings, job_id)
    if outcome == "not_failed":
        requeued_from = await redis.hget(job_record_key(job_id), "requeued_from")
        if requeued_from is None or as_text(requeued_from) != letter.id:
            raise Conflict(f"job {job_id} is {as_text(reply[1])}, not failed: not requeued")
        await redis.xdel(dead_letter_key(), letter.id)  # requeued before; finish the cleanup
        return Requeued(letter.id, job_id, None, f"already requeued ({as_text(reply[1])})")
    # The job lives on for another ttl: its tombstone must outlive it again.
    await redis.expire(job_tombstone_key(job_id), settings.tombstone_ttl_seconds)
    entry = await redis.xadd(queue_key_for(job_id), {"job": job_id})
    await redis.xdel(dead_letter_key(), letter.id)
    return Requeued(letter.id, job_id, as_text(entry), "reset and queued")


async def _requeue_request(redis: AnyRedis, letter: DeadLetter) -> Requeued:
    """A request that never became a job goes back on the queue as it was (under the job id
    it would have had), to be validated again, e.g. after the allowed models changed."""
    job_id = letter.job_id
    assert job_id is not None
    fields = {k: v for k, v in letter.fields.items() if k not in _DEAD_LETTER_FIELDS}
    fields[b"job"] = job_id.encode()
    entry = await redis.xadd(queue_key_for(job_id), fields)  # type: ignore[arg-type]
    await redis.xdel(dead_letter_key(), letter.id)
    return Requeued(letter.id, job_id, as_text(entry), "request queued again")
