"""What the gateway's handlers share, built once in ``create_app``."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from service.contract.settings import Settings
from service.contract.store.job_tokens import JobTokens
from service.contract.store.redis_client import AnyRedis
from service.contract.store.scripts import Scripts
from service.gateway.access_control import RateLimiter, StreamSlots
from service.gateway.fanout.hub import FeedHub
from service.gateway.metrics import GatewayMetrics
from service.gateway.shared_reads import SharedReads


@dataclass(slots=True)
class GatewayState:
    """The gateway's shared objects; ``shutting_down`` stops new streams."""

    settings: Settings
    redis: AnyRedis
    scripts: Scripts
    hub: FeedHub
    tokens: JobTokens
    metrics: GatewayMetrics
    limiter: RateLimiter
    stream_slots: StreamSlots
    # Concurrent reads of one job's record (a reconnect storm) share one round trip.
    shared_reads: SharedReads = field(default_factory=SharedReads)
    shutting_down: bool = False


STATE = web.AppKey("state", GatewayState)
