"""A lane reader's blocking ``XREAD``: on a plain single Redis over a connection of its own.

At a few viewers per job the lane's reads are most of the gateway's CPU per token, and
redis-py's command path (pool checkout and release, retry wrapper, command packing, response
callbacks, observability hooks, a timeout context per read) costs about 200 us per ``XREAD``
on this project's machines against about 30 us for the read itself. So for ``redis://`` and
``unix://`` Redis the reader keeps one connection of its own: an asyncio protocol feeding
hiredis (the parser redis-py itself uses), connected with the address, credentials and
database redis-py resolved from the URL, speaking RESP2 (no ``HELLO``). Everything else goes
through the client: a cluster routes each read by slot and follows failovers, and TLS stays
with redis-py's own connection set-up.

Unlike the client's commands, a read on the own connection is not retried: a lost connection
is the lane reader's failure (it drops its feeds' histories and checks their positions before
reading on), and it does not show in the Redis command metrics. The connection is outside the
client's pool (at most one per lane per process, 64).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, cast

import hiredis
from redis.asyncio import Redis
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service.contract.store.redis_client import AnyRedis

# (stream key, its entries) pairs, as RESP2 and RESP3 both give them.
StreamsReply = list[tuple[bytes, Any]]

CONNECT_SECONDS = 5.0
# Beyond the read's own BLOCK time: how long a reply may be late before the connection is
# taken for dead (a Redis that stopped answering without closing it).
REPLY_GRACE_SECONDS = 10.0


class StreamTail:
    """Blocking multi-key ``XREAD`` for one lane reader."""

    def __init__(self, redis: AnyRedis) -> None:
        self._redis = redis
        # Credentials from a provider (not the URL) stay with redis-py's connection set-up.
        self._own = (
            isinstance(redis, Redis)
            and _plain(redis.connection_pool.connection_class)
            and redis.connection_pool.connection_kwargs.get("credential_provider") is None
        )
        self._conn: _Connection | None = None

    async def read(self, streams: dict[str, str], count: int, block_ms: int) -> StreamsReply:
        """Entries after each stream's id (``streams``: key -> id); empty after ``block_ms``
        without any."""
        if not self._own:
            keys: dict[Any, Any] = streams
            return _pairs(await self._redis.xread(keys, count=count, block=block_ms))
        conn = self._conn
        if conn is None or conn.closed:
            assert isinstance(self._redis, Redis)
            conn = self._conn = await _Connection.open(self._redis)
        args = ("XREAD", "COUNT", count, "BLOCK", block_ms, "STREAMS", *streams, *streams.values())
        try:
            async with asyncio.timeout(block_ms / 1000 + REPLY_GRACE_SECONDS):
                return _pairs(await conn.call(args))
        except TimeoutError:
            conn.close()
            raise RedisTimeoutError("lane read: no reply from Redis") from None
        except BaseException:
            # A cancelled or failed read may still get its reply: never read that connection
            # again.
            conn.close()
            raise

    async def close(self) -> None:
        """Drop the connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class _Connection(asyncio.Protocol):
    """One request at a time over one socket, replies parsed by hiredis."""

    def __init__(self) -> None:
        self._reader = hiredis.Reader(replyError=ResponseError)
        self._transport: asyncio.Transport | None = None
        self._reply: asyncio.Future[Any] | None = None
        self.closed = False

    @classmethod
    async def open(cls, redis: Redis) -> _Connection:
        """Connect and authenticate as the client's own connections would."""
        # An unconnected connection of the client's pool: redis-py's reading of the URL.
        params = redis.connection_pool.make_connection()  # type: ignore[no-untyped-call]
        loop = asyncio.get_running_loop()
        conn = cls()
        try:
            async with asyncio.timeout(CONNECT_SECONDS):
                if isinstance(params, UnixDomainSocketConnection):
                    await loop.create_unix_connection(lambda: conn, params.path)
                else:
                    await loop.create_connection(lambda: conn, params.host, params.port)
                if params.password:
                    user = (params.username,) if params.username else ()
                    await conn.call(("AUTH", *user, params.password))
                if params.db:
                    await conn.call(("SELECT", params.db))
        except (OSError, TimeoutError) as exc:
            conn.close()
            raise RedisConnectionError(f"lane reader cannot connect: {exc!r}") from exc
        except BaseException:
            conn.close()
            raise
        return conn

    async def call(self, args: tuple[Any, ...]) -> Any:
        """Send one command; its reply (a Redis error reply raises ``ResponseError``). The
        caller bounds the wait."""
        if self.closed or self._transport is None:
            raise RedisConnectionError("lane reader connection closed")
        self._reply = asyncio.get_running_loop().create_future()
        self._transport.write(_pack(args))
        try:
            reply = await self._reply
        finally:
            self._reply = None
        if isinstance(reply, ResponseError):
            raise reply
        return reply

    def close(self) -> None:
        """Close the socket; a pending call fails."""
        self.closed = True
        if self._transport is not None:
            self._transport.abort()
        self._fail(RedisConnectionError("lane reader connection closed"))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not registered as asyncio.Transport: no isinstance check.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        try:
            reply = self._reader.gets()
        except hiredis.ProtocolError as exc:
            self._fail(RedisConnectionError(f"lane reader: bad reply: {exc}"))
            self.close()
            return
        if reply is not False and self._reply is not None and not self._reply.done():
            self._reply.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(RedisConnectionError(f"lane reader connection lost: {exc!r}"))

    def _fail(self, exc: Exception) -> None:
        if self._reply is not None and not self._reply.done():
            self._reply.set_exception(exc)
            with contextlib.suppress(BaseException):
                self._reply.exception()  # retrieved: no "never retrieved" warning


def _plain(connection_class: type[Any]) -> bool:
    """Whether the client's connections are plain TCP or a Unix socket (not TLS)."""
    if issubclass(connection_class, SSLConnection):
        return False
    return issubclass(connection_class, (Connection, UnixDomainSocketConnection))


def _pack(args: tuple[Any, ...]) -> bytes:
    """A command in RESP."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        value = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(value), value))
    return b"".join(parts)


def _pairs(reply: Any) -> StreamsReply:
    if not reply:
        return []
    if isinstance(reply, dict):  # RESP3: a map of key -> entries
        return list(reply.items())
    return [(key, entries) for key, entries in reply]
