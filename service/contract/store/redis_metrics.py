"""Metrics every process exports about Redis: command latency and errors, reconnects, and the
shared queue's figures (read from Redis at each scrape).

:func:`instrument_redis` wraps one client instance (never the class): its commands, its
pipelines and its connections' reconnects are counted on the registry of the process that owns
the client.
"""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import NoScriptError, RedisError

from service.contract.store.queue_status import read_queue_status
from service.contract.store.redis_client import AnyRedis

log = logging.getLogger(__name__)

# A command to a nearby Redis takes ~0.1-1 ms; a slow script or a loaded server, tens of ms.
REDIS_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)
_COMMAND_NAME = re.compile(r"^[A-Z][A-Z ]{0,31}$")
# Seconds after which a consumer that did not poll counts as gone (workers poll every 2 s).
ACTIVE_CONSUMER_SECONDS = 30.0


class RedisMetrics:
    """Command latency, errors and reconnects of this process's Redis clients."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.command_seconds = Histogram(
            "tokenrelay_redis_command_duration_seconds",
            "Redis commands by how long they took (pipelines as PIPELINE or MULTI); blocking "
            "reads (BLOCK) are not timed",
            ["command"],
            buckets=REDIS_BUCKETS,
            registry=registry,
        )
        self.command_errors = Counter(
            "tokenrelay_redis_command_errors_total",
            "Redis commands that failed, by command and error class",
            ["command", "error"],
            registry=registry,
        )
        self.reconnects = Counter(
            "tokenrelay_redis_reconnects_total",
            "Connections to Redis opened again after they had been lost",
            registry=registry,
        )
        self._timers: dict[str, Any] = {}

    def timer(self, command: str) -> Any:
        """The histogram child of one command (looked up once per command name)."""
        child = self._timers.get(command)
        if child is None:
            child = self._timers[command] = self.command_seconds.labels(command)
        return child


class QueueMetrics:
    """Gauges of the shared queue, refreshed from Redis when the process is scraped.

    Every process reports the same figures (they describe Redis, not the process): aggregate
    them with ``max``, not ``sum``.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        def gauge(name: str, doc: str) -> Gauge:
            return Gauge(name, doc, registry=registry)

        self.length = gauge("tokenrelay_queue_length", "Entries in the queue: waiting + running")
        self.waiting = gauge(
            "tokenrelay_queue_lag", "Queue entries no worker has taken yet (consumer-group lag)"
        )
        self.pending = gauge(
            "tokenrelay_queue_pending",
            "Queue entries taken by a worker and not acknowledged (running, or held by a "
            "worker that died until its lease runs out)",
        )
        self.oldest = gauge(
            "tokenrelay_queue_oldest_waiting_age_seconds",
            "Age of the oldest queue entry no worker has taken yet (0 when none waits)",
        )
        self.consumers = gauge(
            "tokenrelay_queue_active_consumers",
            f"Workers that polled the queue in the last {ACTIVE_CONSUMER_SECONDS:g} s",
        )
        self.dead = gauge("tokenrelay_dead_letters", "Entries in the dead-letter stream tr:dead")

    async def refresh(self, redis: AnyRedis) -> None:
        """Read the queue's figures; on a Redis error the gauges keep their last values."""
        try:
            status = await read_queue_status(redis)
        except RedisError as exc:
            log.warning("cannot read queue figures for /metrics", extra={"error": str(exc)})
            return
        self.length.set(status.length)
        self.waiting.set(status.waiting)
        self.pending.set(status.pending)
        self.oldest.set(status.oldest_waiting_seconds)
        self.consumers.set(status.active_consumers(ACTIVE_CONSUMER_SECONDS))
        self.dead.set(status.dead_letters)


def instrument_redis(redis: AnyRedis, metrics: RedisMetrics) -> None:
    """Count this client's commands, pipelines, errors and reconnects on ``metrics``
    (reconnects of a single Redis; a cluster client's per-node pools are not counted)."""
    command = redis.execute_command

    async def execute_command(*args: Any, **options: Any) -> Any:
        name = _command_name(args[0] if args else "")
        blocking = b"BLOCK" in args or "BLOCK" in args
        return await _timed(name, metrics, lambda: command(*args, **options), blocking)

    pipeline = redis.pipeline

    def timed_pipeline(*args: Any, **kwargs: Any) -> Any:
        pipe = pipeline(*args, **kwargs)
        execute = pipe.execute
        transaction = kwargs.get("transaction", args[0] if args else None)
        if transaction is None:  # each client's own default: Redis MULTI, a cluster not
            transaction = isinstance(redis, Redis)
        name = "MULTI" if transaction else "PIPELINE"

        async def timed_execute(raise_on_error: bool = True) -> list[Any]:
            result: list[Any] = await _timed(
                name, metrics, lambda: execute(raise_on_error=raise_on_error), False
            )
            return result

        pipe.execute = timed_execute  # type: ignore[method-assign]
        return pipe

    redis.execute_command = execute_command  # type: ignore[method-assign]
    redis.pipeline = timed_pipeline  # type: ignore[method-assign]
    if isinstance(redis, Redis):
        _count_reconnects(redis, metrics.reconnects)


async def _timed(
    name: str, metrics: RedisMetrics, call: Callable[[], Awaitable[Any]], blocking: bool
) -> Any:
    start = time.perf_counter()
    try:
        result = await call()
    except NoScriptError:
        raise  # a script not cached yet: the client loads it and runs it again
    except (RedisError, OSError) as exc:
        metrics.command_errors.labels(name, type(exc).__name__).inc()
        raise
    if not blocking:
        metrics.timer(name).observe(time.perf_counter() - start)
    return result


@functools.lru_cache(maxsize=512)
def _command_name(raw: object) -> str:
    """A bounded label: Redis command names only (what this code sends), else OTHER."""
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
    text = text.upper()
    return text if _COMMAND_NAME.match(text) else "OTHER"


def _count_reconnects(redis: Redis, counter: Counter) -> None:
    """Make the pool's new connections count each connect that follows a lost connection."""
    pool = redis.connection_pool
    base: type[AbstractConnection] = pool.connection_class

    class CountingConnection(base):  # type: ignore[valid-type,misc]
        _had_connection = False

        async def connect_check_health(self, *args: Any, **kwargs: Any) -> None:
            was_connected = self.is_connected
            await super().connect_check_health(*args, **kwargs)
            if not was_connected:
                if self._had_connection:
                    counter.inc()
                self._had_connection = True

    CountingConnection.__name__ = base.__name__
    pool.connection_class = CountingConnection
