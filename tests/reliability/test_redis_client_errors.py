"""Which errors count as "Redis could not serve the command": redis-py lets transport errors
escape as AttributeError/TypeError when a connection is closed under a command (seen in CI
when a cluster primary died); they must be retried like a ConnectionError, while the same
error types raised by our own code stay bugs."""

from __future__ import annotations

import traceback

import pytest
from redis.asyncio import Redis
from redis.asyncio.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import DataError

from service.contract.store.redis_client import is_redis_failure


async def test_transport_error_leaking_from_redis_py_is_a_redis_failure() -> None:
    # The very line of the CI failure: a write on a connection whose writer was torn down.
    connection = Connection(host="127.0.0.1", port=1)
    with pytest.raises(AttributeError) as raised:
        await connection._send_packed_command([b"PING\r\n"])
    assert is_redis_failure(raised.value)


async def test_redis_errors_count_and_our_own_bugs_do_not() -> None:
    assert is_redis_failure(RedisConnectionError("gone"))
    with pytest.raises(AttributeError) as raised:
        None.writelines  # type: ignore[attr-defined]  # noqa: B018
    assert not is_redis_failure(raised.value)
    # Bad arguments fail inside redis-py's command layer: a bug of ours, not an outage.
    client = Redis(host="127.0.0.1", port=1)
    with pytest.raises(DataError) as refused:
        await client.xadd("stream", {})
    assert not is_redis_failure(refused.value)
    with pytest.raises(AttributeError) as bad_call:
        await client.hset("hash", mapping=5)  # type: ignore[arg-type]
    assert any("redis" in frame.filename for frame in traceback.extract_tb(bad_call.tb))
    assert not is_redis_failure(bad_call.value)
    assert not is_redis_failure(ValueError("no"))
    await client.aclose()
