"""The Prometheus text exposition, as the gateway and the worker both serve it."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest

# The classic text format: every Prometheus version since 2.0 scrapes it.
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def metrics_response(registry: CollectorRegistry) -> web.Response:
    """A ``GET /metrics`` answer with the registry's current figures."""
    return web.Response(
        body=generate_latest(registry),
        headers={"Content-Type": METRICS_CONTENT_TYPE, "X-Content-Type-Options": "nosniff"},
    )
