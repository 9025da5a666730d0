"""How every process connects to Redis: one place for pool size, timeouts and reconnect backoff."""

from __future__ import annotations

from typing import TypeAlias

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import EqualJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

AnyRedis: TypeAlias = "Redis"


def connect(url: str, *, max_connections: int = 1024) -> Redis:
    """A client whose commands retry connection errors with jittered backoff.

    Replies stay bytes (``decode_responses=False``): token text is decoded once, where it is
    used, and the event frames are built from the raw bytes.
    """
    retry = Retry(EqualJitterBackoff(cap=2.0, base=0.05), retries=5)
    return Redis.from_url(
        url,
        max_connections=max_connections,
        socket_connect_timeout=5.0,
        socket_keepalive=True,
        health_check_interval=30,
        retry=retry,
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )
