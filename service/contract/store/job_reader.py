"""Reading a job back from Redis: its record and its current attempt's output, or the one
``job_not_found`` answer every reader gives for a job that is not there."""

from __future__ import annotations

from service.contract.errors import NotFound
from service.contract.jobs import JobRecord
from service.contract.keys import job_output_key, job_record_key
from service.contract.store.redis_client import AnyRedis


def job_not_found(job_id: str) -> NotFound:
    """The error for a job id that names no job (never known, or expired)."""
    return NotFound(
        f"no job {job_id!r} (unknown, or expired after its retention)", code="job_not_found"
    )


async def read_job(redis: AnyRedis, job_id: str) -> tuple[JobRecord, str]:
    """The job's record and its current attempt's output, read together."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(job_record_key(job_id))
        pipe.get(job_output_key(job_id))
        raw, output = await pipe.execute()
    if not raw:
        raise job_not_found(job_id)
    return JobRecord.from_hash(raw), bytes(output or b"").decode("utf-8")
