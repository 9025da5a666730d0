"""The Durable Streams tests run against a single Redis and against a Redis Cluster, with a
short long-poll (the suite waits for some long-polls to time out within 5 s)."""

from __future__ import annotations

import pytest

from service.cli.embedded_redis import RedisServer
from service.contract.settings import Settings
from tests.conftest import make_settings

LONG_POLL_SECONDS = 2.0


@pytest.fixture(params=["single", "cluster"])
def redis_url(request: pytest.FixtureRequest, redis_server: RedisServer) -> str:
    if request.param == "cluster":
        url: str = request.getfixturevalue("redis_cluster").url
        return url
    return redis_server.url


@pytest.fixture
def settings(redis_url: str, upstream_url: str) -> Settings:
    return make_settings(
        redis_url=redis_url,
        upstream_url=upstream_url,
        durable_streams_long_poll_seconds=LONG_POLL_SECONDS,
        # The suite's CORS preflight comes from this origin.
        cors_origins=["https://example.com"],
    )
