"""Prometheus metrics of the gateway, on a registry of its own (no import-time globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest


class GatewayMetrics:
    """The gateway's counters and gauges."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.jobs_submitted = Counter(
            "tokenrelay_jobs_submitted_total", "Jobs accepted by POST /v1/jobs",
            registry=self.registry,
        )  # fmt: skip
        self.jobs_cancelled = Counter(
            "tokenrelay_jobs_cancelled_total", "Jobs cancelled through DELETE /v1/jobs/{id}",
            registry=self.registry,
        )  # fmt: skip
        self.viewers = Gauge(
            "tokenrelay_viewers", "Viewers connected to this gateway", registry=self.registry
        )
        self.feeds = Gauge(
            "tokenrelay_job_feeds", "Jobs this gateway reads from Redis (one reader each)",
            registry=self.registry,
        )  # fmt: skip
        self.streams_ended = Counter(
            "tokenrelay_viewer_streams_ended_total", "Viewer streams ended, by reason",
            ["reason"], registry=self.registry,
        )  # fmt: skip
        self.resumes = Counter(
            "tokenrelay_resumes_total", "Streams resumed from a Last-Event-ID, by where it came",
            ["source"], registry=self.registry,
        )  # fmt: skip
        self.bytes_sent = Counter(
            "tokenrelay_event_bytes_sent_total", "Bytes of SSE frames written to viewers",
            registry=self.registry,
        )  # fmt: skip
        self.no_content = Counter(
            "tokenrelay_stream_no_content_total", "204 answers to resumes past the end",
            registry=self.registry,
        )  # fmt: skip

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
