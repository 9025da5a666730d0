"""Prometheus metrics of a worker process, and the small HTTP server that exposes them.

Every worker process has its own registry and serves it on its own port
(``TOKENRELAY_WORKER_METRICS_PORT``, default 9101; 0 = off): several workers on one host need
one port each, and Prometheus scrapes each as its own target (no shared multiprocess
directory). A port that cannot be bound is logged and the worker runs on without metrics.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from aiohttp import web
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
)

from service.contract.settings import Settings
from service.contract.store.redis_client import AnyRedis
from service.contract.store.redis_metrics import QueueMetrics, RedisMetrics
from service.contract.telemetry.exposition import metrics_response

log = logging.getLogger(__name__)

# Seconds from sending the request to the first token: fast models answer in 100 ms, a
# loaded or reasoning model in tens of seconds (the first-token timeout defaults to 60 s).
TTFT_BUCKETS = (
    0.05,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    1.5,
    2.0,
    3.0,
    5.0,
    7.5,
    10.0,
    15.0,
    20.0,
    30.0,
    45.0,
    60.0,
)
# Seconds between two pieces of text: ms while streaming, seconds when it stalls.
GAP_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.02,
    0.035,
    0.05,
    0.075,
    0.1,
    0.15,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
# Seconds of a whole upstream call: a short answer to the 600 s total timeout.
CALL_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)
TOKENS_PER_SECOND_BUCKETS = (1, 5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 500, 1000, 2000)
# Seconds a job waits in the queue before its first attempt starts.
QUEUE_WAIT_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    900.0,
)
OTHER_MODEL = "other"


class WorkerMetrics:
    """The worker's metrics, on a registry of its own."""

    def __init__(self, settings: Settings, worker_id: str) -> None:
        self._models = frozenset({settings.model, *settings.models})
        self.registry = registry = CollectorRegistry(auto_describe=True)

        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
            return Counter(name, doc, labels, registry=registry)

        def histogram(name: str, doc: str, labels: tuple[str, ...], buckets: Any) -> Histogram:
            return Histogram(name, doc, labels, buckets=buckets, registry=registry)

        Gauge(
            "tokenrelay_worker_info", "This worker (always 1)", ["worker_id"], registry=registry
        ).labels(worker_id).set(1)
        Gauge(
            "tokenrelay_worker_concurrency",
            "Jobs this worker runs at most at once",
            registry=registry,
        ).set(settings.worker_concurrency)
        self.running = Gauge(
            "tokenrelay_worker_jobs_running", "Jobs this worker runs now", registry=registry
        )
        self.jobs_started = counter(
            "tokenrelay_jobs_started_total",
            "Job deliveries whose first attempt started here (redelivered: taken over from "
            "another worker, or handed back)",
            ("delivery",),
        )
        self.jobs_done = counter("tokenrelay_jobs_done_total", "Jobs that ended done")
        self.jobs_failed = counter(
            "tokenrelay_jobs_failed_total", "Jobs that ended failed, by error code", ("code",)
        )
        self.jobs_stopped = counter(
            "tokenrelay_worker_jobs_stopped_total",
            "Job runs stopped from outside: ended (cancelled), lease_lost, fenced, shutdown",
            ("reason",),
        )
        self.dead_lettered = counter(
            "tokenrelay_dead_lettered_total",
            "Entries written to the dead-letter stream, by reason",
            ("reason",),
        )
        self.queue_wait = histogram(
            "tokenrelay_job_queue_wait_seconds",
            "From submit to the job's first attempt",
            (),
            QUEUE_WAIT_BUCKETS,
        )
        self.event_writes = counter(
            "tokenrelay_worker_event_writes_total",
            "Events appended to job streams (tokens merged over TOKEN_FLUSH_MS count once)",
            ("type",),
        )
        self.upstream_seconds = histogram(
            "tokenrelay_upstream_request_duration_seconds",
            "Upstream calls by their whole duration and outcome (ok, cancelled, aborted, or "
            "the error code)",
            ("model", "outcome"),
            CALL_BUCKETS,
        )
        self.upstream_ttft = histogram(
            "tokenrelay_upstream_time_to_first_token_seconds",
            "From sending an upstream request to its first text",
            ("model",),
            TTFT_BUCKETS,
        )
        self.upstream_gap = histogram(
            "tokenrelay_upstream_inter_token_seconds",
            "Time between two pieces of text of one upstream stream",
            ("model",),
            GAP_BUCKETS,
        )
        self.upstream_rate = histogram(
            "tokenrelay_upstream_tokens_per_second",
            "Completion tokens per second of each finished upstream stream, after its first",
            ("model",),
            TOKENS_PER_SECOND_BUCKETS,
        )
        self.upstream_retries = counter(
            "tokenrelay_upstream_retries_total",
            "Attempts retried, by the failure's code",
            ("code",),
        )
        self.upstream_in_flight = Gauge(
            "tokenrelay_upstream_requests_in_flight", "Upstream calls open now", registry=registry
        )
        self.usage_tokens = counter(
            "tokenrelay_upstream_usage_tokens_total",
            "Tokens the upstream reported in usage, by model and kind (prompt, completion)",
            ("model", "kind"),
        )
        self.redis = RedisMetrics(registry)
        self.queue = QueueMetrics(registry)

    def model_label(self, model: str) -> str:
        """A bounded label: the configured models by name, any other as ``other``."""
        return model if model in self._models else OTHER_MODEL

    def event_written(self, kind: str) -> None:
        """An event of type ``kind`` was appended to a job's stream."""
        self.event_writes.labels(kind).inc()

    def upstream_call(self, model: str) -> UpstreamCall:
        """Start timing one upstream call."""
        return UpstreamCall(self, self.model_label(model))


class UpstreamCall:
    """One upstream call: its first token, the gaps between pieces, its rate and outcome."""

    __slots__ = ("_first", "_gap", "_last", "_metrics", "_model", "_start", "_tokens", "pieces")

    def __init__(self, metrics: WorkerMetrics, model: str) -> None:
        self._metrics = metrics
        self._model = model
        self._gap = metrics.upstream_gap.labels(model)
        self._start = time.perf_counter()
        self._first: float | None = None
        self._last = 0.0
        self._tokens: int | None = None
        self.pieces = 0
        metrics.upstream_in_flight.inc()

    def text(self) -> None:
        """A piece of text arrived."""
        now = time.perf_counter()
        if self._first is None:
            self._first = now
            self._metrics.upstream_ttft.labels(self._model).observe(now - self._start)
        else:
            self._gap.observe(now - self._last)
        self._last = now
        self.pieces += 1

    def usage(self, usage: dict[str, Any]) -> None:
        """The provider's usage report."""
        for kind in ("prompt", "completion"):
            value = usage.get(f"{kind}_tokens")
            if isinstance(value, int) and value >= 0:
                self._metrics.usage_tokens.labels(self._model, kind).inc(value)
                if kind == "completion":
                    self._tokens = value

    def finish(self, outcome: str) -> None:
        """The call ended: ``ok``, ``cancelled``, ``aborted`` or an upstream error code."""
        metrics = self._metrics
        metrics.upstream_in_flight.dec()
        metrics.upstream_seconds.labels(self._model, outcome).observe(
            time.perf_counter() - self._start
        )
        tokens = self._tokens if self._tokens is not None else self.pieces
        if outcome == "ok" and self._first is not None and tokens > 1:
            streaming = self._last - self._first
            if streaming > 0:
                metrics.upstream_rate.labels(self._model).observe((tokens - 1) / streaming)


async def serve_metrics(
    metrics: WorkerMetrics, redis: AnyRedis, host: str, port: int
) -> web.AppRunner | None:
    """Serve ``GET /metrics`` on ``host:port``; None when off (port 0) or the port is taken."""
    if port == 0:
        return None

    async def handler(request: web.Request) -> web.Response:
        await metrics.queue.refresh(redis)
        return metrics_response(metrics.registry)

    app = web.Application()
    app.router.add_get("/metrics", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, reuse_address=True).start()
    except OSError as exc:
        await runner.cleanup()
        log.error(
            "cannot serve worker metrics; running without them (give each worker on a host "
            "its own TOKENRELAY_WORKER_METRICS_PORT)",
            extra={"host": host, "port": port, "error": str(exc)},
        )
        return None
    log.info("worker metrics", extra={"url": f"http://{host}:{port}/metrics"})
    return runner
