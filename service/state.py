"""What the gateway's handlers share, built once in ``create_app``."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from service.access_control import RateLimiter, StreamSlots
from service.fanout import FeedHub
from service.metrics import GatewayMetrics
from service.redis_client import AnyRedis
from service.scripts import Scripts
from service.settings import Settings
from service.viewer_tokens import ViewerTokens


@dataclass(slots=True)
class GatewayState:
    """The gateway's shared objects; ``shutting_down`` stops new streams."""

    settings: Settings
    redis: AnyRedis
    scripts: Scripts
    hub: FeedHub
    tokens: ViewerTokens
    metrics: GatewayMetrics
    limiter: RateLimiter
    stream_slots: StreamSlots
    shutting_down: bool = False


STATE = web.AppKey("state", GatewayState)
