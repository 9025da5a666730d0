"""Traces: one trace per job, from ``POST /v1/jobs`` through the queue to the worker's upstream
call and its Redis writes. Off, at the cost of a no-op call, unless the standard ``OTEL_*``
variables ask for them (see :func:`tracing_requested`); the OpenTelemetry packages are the
optional ``otel`` extra and are imported only then.

The job carries its trace as a W3C ``traceparent`` in its record. The id in it is also the
``trace_id`` of every log line about the job, so logs correlate across gateway and worker
even with tracing off (the gateway then passes a caller's ``traceparent`` on, or makes one).
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Literal

log = logging.getLogger(__name__)

TRACEPARENT = "traceparent"
SpanKindName = Literal["internal", "server", "client", "producer", "consumer"]

_TRACEPARENT_RE = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")
_ZERO_TRACE = "0" * 32


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id of a W3C ``traceparent`` value, or None when it is not a valid one."""
    if not traceparent:
        return None
    match = _TRACEPARENT_RE.match(traceparent.strip().lower())
    if match is None or match.group(1) == _ZERO_TRACE:
        return None
    return match.group(1)


def new_traceparent() -> str:
    """A fresh ``traceparent`` (sampled, so a traced worker records a job that an untraced
    gateway submitted)."""
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def tracing_requested(environ: Mapping[str, str]) -> bool:
    """Whether the standard variables ask for traces.

    ``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none`` turn them off; an exporter
    name (``otlp``, ``console``) or an OTLP endpoint turns them on; nothing set = off.
    """
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter != "none"
    return bool(
        environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    )


class Tracing:
    """The process's tracing. This base class is tracing switched off: every method is a
    no-op, so instrumented code pays one call and nothing else."""

    enabled = False

    def span(
        self,
        name: str,
        *,
        kind: SpanKindName = "internal",
        parent: str | None = None,
        attributes: Mapping[str, str | int | float | bool] | None = None,
    ) -> AbstractContextManager[object]:
        """A span around a block, child of ``parent`` (a ``traceparent``) or of the current one."""
        return nullcontext()

    def current_traceparent(self) -> str | None:
        """The ``traceparent`` of the current span, to carry the trace to another process."""
        return None

    def current_trace_id(self) -> str | None:
        """The current span's trace id (32 hex digits), if a span is recording."""
        return None

    def shutdown(self) -> None:
        """Flush and stop exporting, and undo the libraries' instrumentation."""
