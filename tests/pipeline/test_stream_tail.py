"""The lane reader's own Redis connection: the URL's credentials, database and Unix socket
honoured; a cancelled, failed or restarted read never leaves a reply on a reused socket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from service.cli.embedded_redis import RedisServer
from service.contract.store.redis_client import AnyRedis, connect
from service.gateway.fanout.frames import entries_from_reply
from service.gateway.fanout.stream_tail import StreamTail

KEY = "tr:{l0}:events:tail-test"


async def _texts(tail: StreamTail, after: str = "0-0") -> list[str]:
    reply = await tail.read({KEY: after}, 100, 1000)
    assert [key for key, _ in reply] == [KEY.encode()]
    return [entry.text for entry in entries_from_reply(reply[0][1])]


async def _add(redis: AnyRedis, text: str) -> str:
    entry_id = await redis.xadd(KEY, {"t": "token", "d": f'{{"text":"{text}"}}', "n": 1})
    return entry_id.decode() if isinstance(entry_id, bytes) else entry_id


@pytest.fixture
async def client(own_redis: RedisServer) -> AsyncIterator[AnyRedis]:
    redis = connect(own_redis.url)
    yield redis
    await redis.aclose()


async def test_reads_with_the_urls_password_and_database(own_redis: RedisServer) -> None:
    admin = connect(own_redis.url)
    await admin.config_set("requirepass", "s3cret")
    await admin.aclose()
    redis = connect(f"redis://:s3cret@127.0.0.1:{own_redis.port}/3")
    tail = StreamTail(redis)
    try:
        await _add(redis, "in db 3")
        assert await _texts(tail) == ["in db 3"]
        # Database 0 does not have it: the SELECT was honoured.
        other = connect(f"redis://:s3cret@127.0.0.1:{own_redis.port}/0")
        assert await other.exists(KEY) == 0
        await other.aclose()
    finally:
        await tail.close()
        await redis.aclose()


async def test_a_wrong_password_is_an_error_not_a_hang(own_redis: RedisServer) -> None:
    admin = connect(own_redis.url)
    await admin.config_set("requirepass", "s3cret")
    await admin.aclose()
    redis = connect(f"redis://:wrong@127.0.0.1:{own_redis.port}/0")
    tail = StreamTail(redis)
    with pytest.raises(ResponseError, match="WRONGPASS"):
        await tail.read({KEY: "0-0"}, 10, 100)
    await tail.close()
    await redis.aclose()


async def test_reads_over_a_unix_socket(tmp_path: Path) -> None:
    path = tmp_path / "r.sock"  # Unix socket paths are limited to about 100 bytes
    server = RedisServer(data_dir=tmp_path / "redis", extra_args=["--unixsocket", str(path)])
    server.start()
    redis = connect(f"unix://{path}?db=2")
    tail = StreamTail(redis)
    try:
        await _add(redis, "over a socket")
        assert await _texts(tail) == ["over a socket"]
    finally:
        await tail.close()
        await redis.aclose()
        server.stop()


async def test_a_cancelled_read_does_not_leave_its_reply_for_the_next(client: AnyRedis) -> None:
    tail = StreamTail(client)
    first = await _add(client, "one")
    blocked = asyncio.create_task(tail.read({KEY: first}, 10, 5000))
    await asyncio.sleep(0.1)  # the XREAD is in Redis, blocked
    blocked.cancel()
    with pytest.raises(asyncio.CancelledError):
        await blocked
    # Its reply would have been this entry; a reused socket would hand it to the next read,
    # which asks for everything from the start.
    await _add(client, "two")
    assert await _texts(tail) == ["one", "two"]
    await tail.close()


async def test_a_restarted_redis_fails_the_read_then_is_read_again(
    own_redis: RedisServer, client: AnyRedis
) -> None:
    tail = StreamTail(client)
    first = await _add(client, "before")
    blocked = asyncio.create_task(tail.read({KEY: first}, 10, 5000))
    await asyncio.sleep(0.1)
    own_redis.stop(kill=True)
    with pytest.raises(RedisConnectionError):
        await blocked
    own_redis.start()
    await _add(client, "after")
    assert await _texts(tail, after=first) == ["after"]
    await tail.close()
