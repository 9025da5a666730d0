"""Reading a job back from Redis: its record and its current attempt's output, or the one
answer every reader gives for a job that is not there: 410 ``expired`` when its tombstone says
it existed, 404 ``job_not_found`` when it never did."""

from __future__ import annotations

from service.contract.errors import Gone, NotFound, TokenRelayError
from service.contract.jobs import JobRecord
from service.contract.keys import (
    job_output_key,
    job_raw_output_key,
    job_record_key,
    job_tombstone_key,
)
from service.contract.settings import Settings
from service.contract.store.redis_client import AnyRedis


def job_not_found(job_id: str) -> NotFound:
    """The error for a job id that names no job: never known (or its tombstone is gone too)."""
    return NotFound(f"no job {job_id!r}", code="job_not_found")


async def missing_job(redis: AnyRedis, settings: Settings, job_id: str) -> TokenRelayError:
    """Why ``job_id`` has no record: it expired (410, which also ends every share link to
    it), or it never existed (404)."""
    if await redis.exists(job_tombstone_key(job_id)):
        return Gone(
            f"job {job_id!r} has expired: a job's events and output are kept "
            f"{settings.retention_seconds} s after it ends (TOKENRELAY_RETENTION_SECONDS), "
            "and links to it end with them",
            code="expired",
        )
    return job_not_found(job_id)


async def read_job(redis: AnyRedis, settings: Settings, job_id: str) -> tuple[JobRecord, str]:
    """The job's record and its current attempt's output, read together."""
    record, output, _ = await read_job_with_raw(redis, settings, job_id)
    return record, output


async def read_job_with_raw(
    redis: AnyRedis, settings: Settings, job_id: str
) -> tuple[JobRecord, str, str]:
    """The job's record, its current attempt's output and raw output (the upstream's text of a
    code-only job; empty for a raw job, whose output is that text), read together."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(job_record_key(job_id))
        pipe.get(job_output_key(job_id))
        pipe.get(job_raw_output_key(job_id))
        raw, output, raw_output = await pipe.execute()
    if not raw:
        raise await missing_job(redis, settings, job_id)
    return (
        JobRecord.from_hash(raw),
        bytes(output or b"").decode("utf-8"),
        bytes(raw_output or b"").decode("utf-8"),
    )
