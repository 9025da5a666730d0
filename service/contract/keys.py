"""Every Redis key tokenrelay uses, defined once.

A job's keys share the hash tag of its *lane* (``{l<n>}``, one of :data:`LANES`, chosen by
hashing the job id), so every script on a job touches one Redis Cluster hash slot, and a
gateway can tail all of a lane's live jobs with one multi-key ``XREAD``
(``service/gateway/fanout/lane.py``).
The queue is split into :data:`QUEUE_PARTITIONS` streams with tags of their own, so it is
not one hot key on one node. Both numbers are part of the data layout: every process of a
deployment must agree on them, so they are constants, not settings.
"""

from __future__ import annotations

import zlib

PREFIX = "tr"
QUEUE_GROUP = "tr-workers"
LANES = 64
QUEUE_PARTITIONS = 8


def _bucket(job_id: str, buckets: int) -> int:
    return zlib.crc32(job_id.encode()) % buckets


def lane_of(job_id: str) -> int:
    """The lane a job's keys live in."""
    return _bucket(job_id, LANES)


def lane_tag(lane: int) -> str:
    """The hash tag shared by every key of a lane."""
    return f"{{l{lane}}}"


def job_record_key(job_id: str) -> str:
    """Hash with the job's request, state, attempt and fencing fields."""
    return f"{PREFIX}:{lane_tag(lane_of(job_id))}:job:{job_id}"


def job_events_key(job_id: str) -> str:
    """Stream of the job's events: the truth every viewer replays."""
    return f"{PREFIX}:{lane_tag(lane_of(job_id))}:events:{job_id}"


def job_output_key(job_id: str) -> str:
    """String holding the current attempt's output so far (kept with the events atomically)."""
    return f"{PREFIX}:{lane_tag(lane_of(job_id))}:out:{job_id}"


def job_keys(job_id: str) -> list[str]:
    """The job's keys in the order every job script takes them (KEYS[1..3])."""
    return [job_record_key(job_id), job_events_key(job_id), job_output_key(job_id)]


def job_tombstone_key(job_id: str) -> str:
    """Outlives the job's keys: tells an expired job (410) from one that never existed (404)."""
    return f"{PREFIX}:{lane_tag(lane_of(job_id))}:gone:{job_id}"


def queue_key(partition: int) -> str:
    """One partition of the queue: a stream of submitted jobs, consumed by the workers' group."""
    return f"{PREFIX}:{{q{partition}}}:queue"


def queue_keys() -> list[str]:
    """Every queue partition."""
    return [queue_key(partition) for partition in range(QUEUE_PARTITIONS)]


def queue_key_for(job_id: str) -> str:
    """The partition a job is enqueued on."""
    return queue_key(_bucket(job_id, QUEUE_PARTITIONS))


def replication_marker_key(key: str) -> str:
    """A key in ``key``'s hash slot that a submit writes right before ``WAIT`` on its
    primary (``service/contract/store/replication.py``)."""
    start = key.find("{")
    end = key.find("}", start + 1)
    # A key without a hash tag hashes whole: the whole key becomes the marker's tag.
    tag = key[start : end + 1] if start >= 0 and end > start + 1 else f"{{{key}}}"
    return f"{PREFIX}:{tag}:replicated"


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


def lane_wake_key(lane: int, reader_id: str) -> str:
    """A gateway's control stream in a lane: an entry wakes its blocked lane read."""
    return f"{PREFIX}:{lane_tag(lane)}:wake:{reader_id}"


def gateways_key() -> str:
    """Sorted set of gateways with a live viewer report, scored by its expiry (ms)."""
    return f"{PREFIX}:gateways"


def gateway_viewers_key(gateway_id: str) -> str:
    """One gateway's viewers per job (hash job id -> count)."""
    return f"{PREFIX}:viewers:{gateway_id}"
