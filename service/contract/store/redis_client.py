"""How every process connects to Redis: one place for the client kind, pool size, timeouts and
reconnect backoff. One setting switches between a single Redis and a Redis Cluster; the rest
of the code is the same for both (every multi-key command stays in one hash slot)."""

from __future__ import annotations

from pathlib import Path
from typing import TypeAlias
from urllib.parse import urlsplit

import redis
from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.retry import Retry
from redis.backoff import EqualJitterBackoff
from redis.driver_info import DriverInfo
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import DataError, RedisClusterException, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service.contract.errors import Unavailable

AnyRedis: TypeAlias = Redis | RedisCluster

CLUSTER_SCHEME = "redis+cluster://"
# Longer than any blocking read issued (XREAD/XREADGROUP block at most 5 s): a reply that
# never comes (a half-open connection, a node that died mid-command) becomes a retried error
# instead of a hang.
SOCKET_TIMEOUT_SECONDS = 15.0
POOL_WAIT_SECONDS = 10.0  # a command waits this long for a pooled connection, then fails


_REDIS_PACKAGE = Path(redis.__file__).parent
# Where redis-py handles connections and topology: a transport error leaking as
# AttributeError/TypeError comes from here, while one raised by bad arguments of ours comes
# from the command layer (redis/commands) and stays a bug.
_CONNECTION_LAYER = tuple(
    str(_REDIS_PACKAGE.joinpath(*part))
    for part in (("asyncio", "connection.py"), ("asyncio", "cluster.py"), ("_parsers",))
)


def is_redis_failure(exc: BaseException) -> bool:
    """Whether ``exc`` means Redis could not serve a command: a ``RedisError`` (but not a
    ``DataError``: arguments redis-py refused before sending, a bug of ours), a cluster whose
    slots are not covered mid-failover, or the ``AttributeError``/``TypeError`` redis-py
    lets escape from its connection layer when a connection is closed under a command
    (redis/redis-py#4287, #3835; seen here when a cluster primary dies). Those bypass
    redis-py's retries, so callers retry them like a ``ConnectionError``."""
    if isinstance(exc, DataError):
        return False
    if isinstance(exc, (RedisError, RedisClusterException)):
        return True
    if not isinstance(exc, (AttributeError, TypeError)):
        return False
    frames = exc.__traceback__
    while frames is not None:
        if frames.tb_frame.f_code.co_filename.startswith(_CONNECTION_LAYER):
            return True
        frames = frames.tb_next
    return False


# Given explicitly: without it redis-py 8 looks its own version up in the installed package
# metadata for every new connection (~1 ms each, measured), which a burst of reconnecting
# viewers turns into seconds of CPU.
_DRIVER_INFO = DriverInfo(name="redis-py", lib_version=redis.__version__)


def _retry() -> Retry:
    return Retry(EqualJitterBackoff(cap=2.0, base=0.05), retries=5)


def cluster_nodes(url: str) -> list[ClusterNode]:
    """The seed nodes of ``redis+cluster://host:port,host:port[/...]``."""
    rest = url.removeprefix(CLUSTER_SCHEME)
    netloc = rest.split("/", 1)[0]
    nodes = []
    for part in netloc.split(","):
        parsed = urlsplit(f"redis://{part}")
        if not parsed.hostname:
            raise ValueError(f"no host in cluster node {part!r}")
        nodes.append(ClusterNode(parsed.hostname, parsed.port or 6379))
    return nodes


def connect(url: str, *, max_connections: int = 1024) -> AnyRedis:
    """A client whose commands retry connection errors with jittered backoff.

    Replies stay bytes (``decode_responses=False``): token text is decoded once, where it is
    used, and the event frames are built from the raw bytes.
    """
    if url.startswith(CLUSTER_SCHEME):
        return RedisCluster(
            startup_nodes=cluster_nodes(url),
            max_connections=max_connections,
            socket_connect_timeout=5.0,
            socket_timeout=SOCKET_TIMEOUT_SECONDS,
            socket_keepalive=True,
            retry=_retry(),
            retry_on_error=[RedisConnectionError, RedisTimeoutError],
            driver_info=_DRIVER_INFO,
        )
    # Blocking: a burst of more concurrent commands than connections (a worker renewing a
    # thousand leases while a thousand jobs write) waits for a free connection instead of
    # failing with MaxConnectionsError.
    # TCP keepalive: a Unix socket's connection class takes no such option.
    keepalive = {} if url.startswith("unix:") else {"socket_keepalive": True}
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=POOL_WAIT_SECONDS,
        socket_connect_timeout=5.0,
        socket_timeout=SOCKET_TIMEOUT_SECONDS,
        **keepalive,
        health_check_interval=30,
        retry=_retry(),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        driver_info=_DRIVER_INFO,
    )
    return Redis.from_pool(pool)  # the client owns the pool: aclose() closes it


async def warm_up(client: AnyRedis, url: str) -> None:
    """Reach Redis before serving, or raise :class:`Unavailable` naming it (password hidden).

    A cluster's topology is loaded first: redis-py's cluster client can fail
    (``AttributeError`` inside its connection setup) when its first commands arrive
    concurrently on a client that has not initialised yet."""
    try:
        if isinstance(client, RedisCluster):
            await client.initialize()
            await client.ping(target_nodes=RedisCluster.ALL_NODES)
        else:
            await client.ping()
    except Exception as exc:
        if not is_redis_failure(exc) and not isinstance(exc, RedisClusterException):
            raise
        shown = urlsplit(url)._replace(netloc=urlsplit(url).netloc.rpartition("@")[2]).geturl()
        raise Unavailable(f"cannot reach Redis at {shown}: {exc}") from exc
