"""Every Redis key tokenrelay uses, defined once.

A job's keys share the hash tag ``{<job id>}`` so that every multi-key script on a
job touches one Redis Cluster hash slot.
"""

from __future__ import annotations

PREFIX = "tr"
QUEUE_GROUP = "tr-workers"


def job_record_key(job_id: str) -> str:
    """Hash with the job's request, state, attempt and fencing fields."""
    return f"{PREFIX}:{{{job_id}}}:job"


def job_events_key(job_id: str) -> str:
    """Stream of the job's events: the truth every viewer replays."""
    return f"{PREFIX}:{{{job_id}}}:events"


def job_output_key(job_id: str) -> str:
    """String holding the current attempt's output so far (kept with the events atomically)."""
    return f"{PREFIX}:{{{job_id}}}:out"


def job_keys(job_id: str) -> list[str]:
    """The job's keys in the order every job script takes them (KEYS[1..3])."""
    return [job_record_key(job_id), job_events_key(job_id), job_output_key(job_id)]


def queue_key() -> str:
    """Stream of submitted job ids, consumed by the workers' group."""
    return f"{PREFIX}:queue"


def dead_letter_key() -> str:
    """Stream of jobs that exhausted their deliveries, kept for inspection."""
    return f"{PREFIX}:dead"


def idempotency_key(digest: str) -> str:
    """Maps a submitter's Idempotency-Key (hashed) to the job it created."""
    return f"{PREFIX}:idem:{digest}"


def signing_secret_key() -> str:
    """The viewer-token signing secret, when none is configured."""
    return f"{PREFIX}:secret"


def rate_limit_key(scope: str, who: str, window: int) -> str:
    """Counter of one client's requests in one rate-limit window."""
    return f"{PREFIX}:rl:{scope}:{who}:{window}"
