"""The contract suite runs against a single Redis and against a Redis Cluster."""

from __future__ import annotations

import pytest

from service.cli.embedded_redis import RedisServer


@pytest.fixture(params=["single", "cluster"])
def redis_url(request: pytest.FixtureRequest, redis_server: RedisServer) -> str:
    if request.param == "cluster":
        url: str = request.getfixturevalue("redis_cluster").url
        return url
    return redis_server.url
