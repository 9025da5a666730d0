"""Cluster-only tests: the Redis under test is a local 3-primary/3-replica cluster."""

from __future__ import annotations

import pytest

from service.cli.embedded_redis import RedisClusterServers


@pytest.fixture
def redis_url(redis_cluster: RedisClusterServers) -> str:
    return redis_cluster.url
