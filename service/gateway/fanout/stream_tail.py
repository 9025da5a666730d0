"""A lane reader's blocking ``XREAD``: on a single Redis over a connection of its own.

redis-py's command path (pool checkout and release, retry wrapper, response callbacks,
observability hooks) costs about twice the CPU of the read itself, once per ``XREAD``; at a
few viewers per job the lane's reads are most of the gateway's work per token. So on a
single Redis the reader keeps one connection (made by the client's pool, so it has the same
address, credentials, TLS and reconnect counting) and sends its command on it directly. A
cluster client routes each read by slot and follows failovers: there the read goes through
the client.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection

from service.contract.store.redis_client import AnyRedis

# (stream key, its entries) pairs, as RESP2 and RESP3 both give them.
StreamsReply = list[tuple[bytes, Any]]


class StreamTail:
    """Blocking multi-key ``XREAD`` for one lane reader."""

    def __init__(self, redis: AnyRedis) -> None:
        self._redis = redis
        self._conn: AbstractConnection | None = None

    async def read(self, streams: dict[str, str], count: int, block_ms: int) -> StreamsReply:
        """Entries after each stream's id (``streams``: key -> id); empty after ``block_ms``
        without any."""
        if not isinstance(self._redis, Redis):
            keys: dict[Any, Any] = streams
            reply: Any = await self._redis.xread(keys, count=count, block=block_ms)
            return _pairs(reply)
        conn = self._conn
        if conn is None:
            conn = self._conn = self._redis.connection_pool.make_connection()  # type: ignore[no-untyped-call]
        try:
            await conn.connect()
            await conn.send_command(
                "XREAD", "COUNT", count, "BLOCK", block_ms, "STREAMS", *streams, *streams.values()
            )
            reply = await conn.read_response()
        except BaseException:
            # A reply may still be on its way (a cancelled or timed-out read): the
            # connection must never be read again.
            await conn.disconnect(nowait=True)
            raise
        return _pairs(reply)

    async def close(self) -> None:
        """Drop the connection."""
        if self._conn is not None:
            await self._conn.disconnect(nowait=True)
            self._conn = None


def _pairs(reply: Any) -> StreamsReply:
    if not reply:
        return []
    if isinstance(reply, dict):  # RESP3: a map of key -> entries
        return list(reply.items())
    return [(key, entries) for key, entries in reply]
