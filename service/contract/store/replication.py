"""Waiting for replicas: the optional durability step of a submit (``SUBMIT_WAIT_REPLICAS``).

Redis replicates asynchronously, so a primary that dies right after answering can take an
accepted job with it. ``WAIT`` closes that window, but it counts only the writes made on its
own connection, and a submit's writes went out on pooled connections to up to three
primaries (the job's lane, its queue partition, its idempotency key). So on each a marker
key in the same hash slot is written on one connection, followed there by ``WAIT``: a
primary replicates in one ordered stream, so a replica that has the marker has every write
the submit made to that primary before it.

redis-py runs a failed cluster pipeline again without the commands' ``target_nodes``, so a
try that fails is not left to it: each try builds a new pipeline from the current topology.
Left alone: during a slot migration (resharding), a redirected marker SET lands on the new
owner while its WAIT ran on the old one, which can confirm too early.
"""

from __future__ import annotations

import asyncio

from redis.asyncio import RedisCluster
from redis.asyncio.cluster import ClusterNode

from service.contract.keys import replication_marker_key
from service.contract.store.redis_client import AnyRedis, is_redis_failure

MARKER_TTL_MS = 60_000
TRIES = 3


async def wait_for_replicas(
    redis: AnyRedis, keys: list[str], replicas: int, timeout_ms: int
) -> int:
    """Block until ``replicas`` replicas of every primary holding ``keys`` have all that was
    written to it so far, or ``timeout_ms`` passed; the fewest replicas any primary got."""
    for attempt in range(1, TRIES + 1):
        try:
            return await _wait_once(redis, keys, replicas, timeout_ms)
        except Exception as exc:
            if attempt == TRIES or not is_redis_failure(exc):
                raise
            await asyncio.sleep(0.05 * attempt)
    raise AssertionError("unreachable")


async def _wait_once(redis: AnyRedis, keys: list[str], replicas: int, timeout_ms: int) -> int:
    cluster = isinstance(redis, RedisCluster)
    markers: dict[str, tuple[str, ClusterNode | None]] = {}  # one marker per primary
    for key in keys:
        marker = replication_marker_key(key)
        node = redis.get_node_from_key(marker) if isinstance(redis, RedisCluster) else None
        markers.setdefault(node.name if node is not None else "", (marker, node))
    async with redis.pipeline(transaction=False) as pipe:
        for marker, node in markers.values():
            pipe.set(marker, b"1", px=MARKER_TTL_MS)
            if cluster:
                # Same node, hence same connection, as the marker's SET, right after it.
                pipe.execute_command("WAIT", replicas, timeout_ms, target_nodes=node)
            else:
                pipe.execute_command("WAIT", replicas, timeout_ms)
        replies = await pipe.execute()
    return min(int(acked) for acked in replies[1::2])
