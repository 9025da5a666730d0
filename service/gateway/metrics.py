"""Prometheus metrics of the gateway, on a registry of its own (no import-time globals).

Names follow the Prometheus conventions: the ``tokenrelay_`` prefix, ``_total`` counters, base
units (seconds, bytes), and labels with a small fixed set of values (a route template, a
reason, an error code; never a job id). The worker's metrics are in ``worker/metrics.py``.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeHistogramMetricFamily
from prometheus_client.registry import Collector

from service.contract.store.redis_metrics import QueueMetrics, RedisMetrics
from service.gateway.fanout.batch import Batch

# The classic text format, which every Prometheus 2.x and 3.x scrapes.
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Seconds of an ordinary HTTP request (not a stream).
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Seconds from a worker's XADD to the write to a viewer's socket: ms when healthy.
DELIVERY_LAG_BUCKETS = (
    0.001,
    0.0025,
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
)
# Bytes one resume replays: a few tokens to a whole long generation.
REPLAY_BYTES_BUCKETS = tuple(float(2**n) for n in range(8, 25, 2))  # 256 B .. 16 MiB
# Viewers of one job on one gateway: one editor, a shared link, a classroom, a broadcast.
VIEWERS_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 10000)


class GatewayMetrics:
    """The gateway's metrics; ``viewers_by_job`` feeds the viewers-per-job histogram."""

    DIRECT_FLUSH_SECONDS = 1.0
    DIRECT_LAG_SECONDS = 0.01

    def __init__(self, viewers_by_job: Callable[[], Iterable[int]] | None = None) -> None:
        self._direct_bytes = self._direct_events = 0
        self._direct_flushed = self._direct_lag_sampled = time.monotonic()
        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.http_requests = Counter(
            "tokenrelay_http_requests_total",
            "HTTP requests answered, by route template",
            ["method", "route", "status"],
            registry=registry,
        )
        self.http_seconds = Histogram(
            "tokenrelay_http_request_duration_seconds",
            "Time to answer an HTTP request (event streams are not timed here)",
            ["method", "route"],
            buckets=HTTP_BUCKETS,
            registry=registry,
        )
        self.jobs_submitted = Counter(
            "tokenrelay_jobs_submitted_total",
            "Jobs accepted by POST /v1/jobs",
            registry=registry,
        )
        self.jobs_cancelled = Counter(
            "tokenrelay_jobs_cancelled_total",
            "Jobs cancelled through DELETE /v1/jobs/{id}",
            registry=registry,
        )
        self.viewers = Gauge(
            "tokenrelay_viewers", "Viewers connected to this gateway", registry=registry
        )
        self.feeds = Gauge(
            "tokenrelay_job_feeds",
            "Jobs this gateway reads from Redis (one reader each)",
            registry=registry,
        )
        self.streams_ended = Counter(
            "tokenrelay_viewer_streams_ended_total",
            "Viewer streams ended, by reason (terminal, slow_viewer, send_timeout, "
            "client_gone, shutdown, feed_ended)",
            ["reason"],
            registry=registry,
        )
        self.resumes = Counter(
            "tokenrelay_resumes_total",
            "Streams resumed from a Last-Event-ID, by where it came",
            ["source"],
            registry=registry,
        )
        self.bytes_sent = Counter(
            "tokenrelay_event_bytes_sent_total",
            "Bytes of SSE frames written to viewers",
            registry=registry,
        )
        self.direct_bytes_sent = Counter(
            "tokenrelay_event_bytes_sent_direct_total",
            "Of those, bytes the feed wrote straight to caught-up viewers' sockets (the rest "
            "went through each viewer's task: replays, resumes, slow sockets)",
            registry=registry,
        )
        self.events_sent = Counter(
            "tokenrelay_events_sent_total",
            "SSE events written to viewers (one per viewer; merged tokens count once)",
            registry=registry,
        )
        self.no_content = Counter(
            "tokenrelay_stream_no_content_total",
            "204 answers to resumes past the end",
            registry=registry,
        )
        self.delivery_lag = Histogram(
            "tokenrelay_delivery_lag_seconds",
            "From an event's XADD (the time in its id) to its write to a viewer, for events "
            "added while the viewer was connected (sampled: at most every 10 ms for the batches "
            "the feeds write to caught-up viewers, 10 per second for each other viewer)",
            buckets=DELIVERY_LAG_BUCKETS,
            registry=registry,
        )
        self.replay_bytes = Histogram(
            "tokenrelay_replay_size_bytes",
            "Streams that replayed events added before the viewer connected, by the bytes "
            "replayed (a resume, or a late joiner catching up)",
            buckets=REPLAY_BYTES_BUCKETS,
            registry=registry,
        )
        self.ready = Gauge(
            "tokenrelay_ready",
            "1 while /readyz answers ready, 0 while it does not",
            registry=registry,
        )
        self.readiness_changes = Counter(
            "tokenrelay_readiness_changes_total",
            "Times /readyz changed its answer, by the new one",
            ["ready"],
            registry=registry,
        )
        self.redis = RedisMetrics(registry)
        self.queue = QueueMetrics(registry)
        if viewers_by_job is not None:
            registry.register(_ViewersPerJob(viewers_by_job))
        self._ready_state: bool | None = None
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}

    def child(self, metric: Counter | Histogram, *values: str) -> Any:
        """``metric.labels(*values)``, looked up once: every request counts into a labelled
        child, and prometheus_client checks and converts the values on every ``labels``
        call (a reconnect storm makes thousands a second). Label values here come from small
        fixed sets, so the children are few."""
        key = (id(metric), values)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*values)
        return found

    def direct_writes(self, batch: Batch, viewers: int) -> None:
        """Count a live batch the feed wrote to ``viewers`` caught-up viewers at once.

        Runs once per batch on the hot path: plain additions here, handed to the shared
        counters at most every ``DIRECT_FLUSH_SECONDS`` and before every scrape
        (:meth:`flush`); the lag is sampled at most every ``DIRECT_LAG_SECONDS``.
        """
        self._direct_bytes += len(batch.frames) * viewers
        self._direct_events += _events_in(batch.frames) * viewers
        now = time.monotonic()
        if now - self._direct_lag_sampled >= self.DIRECT_LAG_SECONDS:
            self._direct_lag_sampled = now
            lag_ms = time.time() * 1000 - _frame_ms(batch.frames, 0)
            self.delivery_lag.observe(max(0.0, lag_ms / 1000))
        if now - self._direct_flushed >= self.DIRECT_FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Hand the direct writes counted since the last flush to the shared counters."""
        self._direct_flushed = time.monotonic()
        if self._direct_bytes:
            self.bytes_sent.inc(self._direct_bytes)
            self.direct_bytes_sent.inc(self._direct_bytes)
            self.events_sent.inc(self._direct_events)
            self._direct_bytes = self._direct_events = 0

    def readiness(self, ready: bool) -> None:
        """Record a /readyz answer; a change of answer is counted."""
        if ready != self._ready_state:
            if self._ready_state is not None:
                self.readiness_changes.labels("true" if ready else "false").inc()
            self._ready_state = ready
            self.ready.set(1 if ready else 0)


class _ViewersPerJob(Collector):
    """``tokenrelay_viewers_per_job``: how many jobs have how many viewers right now (a
    gauge histogram: its buckets count jobs, not observations)."""

    NAME = "tokenrelay_viewers_per_job"
    HELP = "Jobs watched on this gateway, by their number of viewers now"

    def __init__(self, counts: Callable[[], Iterable[int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[Any]:
        counts = sorted(count for count in self._counts() if count > 0)
        buckets = [
            (str(float(bound)), bisect.bisect_right(counts, bound)) for bound in VIEWERS_BUCKETS
        ]
        buckets.append(("+Inf", len(counts)))
        yield GaugeHistogramMetricFamily(self.NAME, self.HELP, buckets, gsum_value=sum(counts))


class ViewerMeter:
    """What one viewer's stream writes: bytes, events, the delivery lag of events added while
    it was connected, and the bytes of events it caught up on (added before it connected).

    Every frame starts with ``id: <ms>-<seq>``, the time Redis added the entry, and a stream's
    ids only grow: writes are classified by their frames' ids until the first live one, and
    every later write is live. The hot path stays cheap: counts are added up here and handed
    to the shared counters at most every ``FLUSH_SECONDS`` (and when the stream ends), and the
    lag is sampled at most every ``LAG_SAMPLE_SECONDS`` per viewer.
    """

    FLUSH_SECONDS = 1.0
    LAG_SAMPLE_SECONDS = 0.1

    __slots__ = (
        "_bytes",
        "_connected_ms",
        "_events",
        "_flushed",
        "_lag_sampled",
        "_live",
        "_metrics",
        "replayed",
    )

    def __init__(self, metrics: GatewayMetrics) -> None:
        self._metrics = metrics
        self._connected_ms = int(time.time() * 1000)
        self._live = False
        self._bytes = 0
        self._events = 0
        self._flushed = self._lag_sampled = time.monotonic()
        self.replayed = 0

    def wrote(self, data: bytes) -> None:
        """Count one write to the viewer's socket."""
        self._bytes += len(data)
        events = _events_in(data)
        now = time.monotonic()
        if events:  # else a retry: or a ping
            self._events += events
            live_from = 0 if self._live else self._first_live_frame(data)
            if live_from < 0:
                self.replayed += len(data)
            else:
                self.replayed += live_from
                if not self._live or now - self._lag_sampled >= self.LAG_SAMPLE_SECONDS:
                    self._live = True
                    self._lag_sampled = now
                    lag_ms = time.time() * 1000 - _frame_ms(data, live_from)
                    self._metrics.delivery_lag.observe(max(0.0, lag_ms / 1000))
        if now - self._flushed >= self.FLUSH_SECONDS:
            self._flush(now)

    def finished(self) -> None:
        """The stream ended: hand over the counts, and record what it replayed."""
        self._flush(time.monotonic())
        if self.replayed:
            self._metrics.replay_bytes.observe(self.replayed)

    def _flush(self, now: float) -> None:
        self._metrics.bytes_sent.inc(self._bytes)
        self._metrics.events_sent.inc(self._events)
        self._bytes = self._events = 0
        self._flushed = now

    def _first_live_frame(self, data: bytes) -> int:
        """Offset of the first frame added after the viewer connected; -1 if none was."""
        if _frame_ms(data, 0) >= self._connected_ms:
            return 0
        last = data.rfind(b"\n\nid: ", 0, len(data) - 2) + 2
        if last < 2 or _frame_ms(data, last) < self._connected_ms:
            return -1
        offset = 0
        while offset >= 0 and _frame_ms(data, offset) < self._connected_ms:
            offset = data.find(b"\n\nid: ", offset)
            offset = offset + 2 if offset >= 0 else -1
        return offset


def _events_in(data: bytes) -> int:
    """SSE events in ``data`` (pings and ``retry:`` have no data line)."""
    return data.count(b"\ndata: ")


def _frame_ms(data: bytes, offset: int) -> int:
    """The millisecond part of the id of the frame at ``offset`` (``id: <ms>-<seq>``)."""
    end = data.find(b"-", offset + 4, offset + 30)
    try:
        return int(data[offset + 4 : end])
    except ValueError:
        return 0
