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

import hashlib
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


def job_raw_output_key(job_id: str) -> str:
    """String holding the current attempt's upstream text as received, for a job whose output
    is the extracted code (``raw_output``; written with the output atomically). Scripts that
    take it get it as KEYS[4], after :func:`job_keys`."""
    return f"{PREFIX}:{lane_tag(lane_of(job_id))}:raw:{job_id}"


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


def ai_chat_key(digest: str) -> str:
    """Maps an AI SDK chat (its owner and chat id, hashed) to the job of its latest
    generation (``service/gateway/ai_sdk/chat_jobs.py``).

    No hash tag, on purpose: the key is only ever read or written alone (``GET``/``SET``),
    never in a script with the job's keys (its lane is not known before the job exists), so
    it hashes whole and chats spread over every slot of a cluster.
    """
    return f"{PREFIX}:aichat:{digest}"


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


def durable_stream_tag(name: str) -> str:
    """The hash tag of one Durable Stream (``service/gateway/durable_streams/``): every key of
    a stream shares it, so each of its scripts touches one slot; the name is hashed, so any
    name makes a short, safe tag and streams spread over every slot of a cluster."""
    return "{ds" + hashlib.sha256(name.encode()).hexdigest()[:24] + "}"


def durable_stream_keys(name: str) -> list[str]:
    """A Durable Stream's keys in the order its scripts take them (KEYS[1..4]): its metadata
    (hash), its data (stream, one entry per append), its idempotent producers (hash producer
    id -> "epoch seq") and its forks (set of the names of the streams forked from it)."""
    tag = durable_stream_tag(name)
    return [f"{PREFIX}:{tag}:{part}" for part in ("dsmeta", "dsdata", "dsprod", "dsforks")]


def job_watchers_key(job_id: str) -> str:
    """Sorted set: the gateways that had viewers of the job, each scored with the time (ms)
    until which it vouches for one (renewed while they watch; ``now`` when the last left)."""
    return f"{PREFIX}:{lane_tag(lane_of(job_id))}:watchers:{job_id}"


def session_key(owner: str, session: str) -> str:
    """A submitter's session (an editor tab): the job that runs in it now."""
    digest = hashlib.sha256(f"{owner}\0{session}".encode()).hexdigest()[:32]
    return f"{PREFIX}:session:{digest}"
