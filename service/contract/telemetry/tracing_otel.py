"""Tracing switched on: the OpenTelemetry SDK, aiohttp server/client and Redis instrumentation.

Imported only when traces are asked for
(:func:`~service.contract.telemetry.tracing_setup.setup_tracing`) or by tests that
pass their own exporter. The instrumentation patches the libraries process-wide;
:meth:`OtelTracing.shutdown` undoes it.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
from opentelemetry.instrumentation.aiohttp_server import AioHttpServerInstrumentor
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.trace import SpanKind

from service.contract.telemetry.tracing import TRACEPARENT, SpanKindName, Tracing

_KINDS: dict[str, SpanKind] = {
    "internal": SpanKind.INTERNAL,
    "server": SpanKind.SERVER,
    "client": SpanKind.CLIENT,
    "producer": SpanKind.PRODUCER,
    "consumer": SpanKind.CONSUMER,
}
# Viewer tokens ride in ``?token=``; URL attributes of spans must not carry them.
_TOKEN_PARAM = re.compile(r"(?i)([?&]token=)[^&\s]+")
# Probes and scrapes would each make a trace of their own.
_EXCLUDED_URLS = "healthz,readyz,metrics"


class _Scrubbed(SpanProcessor):
    """Wraps the exporting processor: redacts viewer tokens from span attributes, and drops
    client spans without a parent (the workers' queue polls and lease renewals, the gateway's
    feed reads), which would each be a one-span trace of no interest."""

    def __init__(self, inner: SpanProcessor) -> None:
        self._inner = inner

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        for key, value in (span.attributes or {}).items():
            if isinstance(value, str) and "token=" in value:
                span.set_attribute(key, _TOKEN_PARAM.sub(r"\1REDACTED", value))
        self._inner.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        if span.parent is None and span.kind is SpanKind.CLIENT:
            return
        self._inner.on_end(span)

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


class OtelTracing(Tracing):
    """Spans through an SDK tracer provider of this process's own (not the global one)."""

    enabled = True

    def __init__(self, provider: TracerProvider) -> None:
        self._provider = provider
        self._tracer = provider.get_tracer("tokenrelay")
        self._instrumentors: list[Any] = [
            AioHttpServerInstrumentor(),
            AioHttpClientInstrumentor(),
            RedisInstrumentor(),
        ]
        with warnings.catch_warnings():
            # The server instrumentation subclasses web.Application, which aiohttp frowns on.
            warnings.filterwarnings("ignore", "Inheritance class", DeprecationWarning)
            for instrumentor in self._instrumentors:
                instrumentor.instrument(tracer_provider=provider)

    @classmethod
    def from_exporter_name(cls, exporter: str, *, service_name: str) -> OtelTracing:
        """Export with ``otlp`` (HTTP/protobuf, configured by ``OTEL_EXPORTER_OTLP_*``) or
        ``console``, in batches."""
        span_exporter: SpanExporter
        if exporter == "console":
            span_exporter = ConsoleSpanExporter()
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            span_exporter = OTLPSpanExporter()
        os.environ.setdefault("OTEL_PYTHON_AIOHTTP_SERVER_EXCLUDED_URLS", _EXCLUDED_URLS)
        return cls.with_processor(BatchSpanProcessor(span_exporter), service_name=service_name)

    @classmethod
    def with_exporter(cls, exporter: SpanExporter, *, service_name: str) -> OtelTracing:
        """Export every span as it ends (tests pass an ``InMemorySpanExporter``)."""
        return cls.with_processor(SimpleSpanProcessor(exporter), service_name=service_name)

    @classmethod
    def with_processor(cls, processor: SpanProcessor, *, service_name: str) -> OtelTracing:
        """A provider whose resource names the service (``OTEL_SERVICE_NAME`` wins) and whose
        sampler follows ``OTEL_TRACES_SAMPLER``."""
        attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: service_name}
        provider = TracerProvider(resource=Resource.create(attributes))
        provider.add_span_processor(_Scrubbed(processor))
        return cls(provider)

    def span(
        self,
        name: str,
        *,
        kind: SpanKindName = "internal",
        parent: str | None = None,
        attributes: Mapping[str, str | int | float | bool] | None = None,
    ) -> AbstractContextManager[object]:
        context = propagate.extract({TRACEPARENT: parent}) if parent else None
        return self._tracer.start_as_current_span(
            name, context=context, kind=_KINDS[kind], attributes=attributes
        )

    def current_traceparent(self) -> str | None:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        return carrier.get(TRACEPARENT)

    def current_trace_id(self) -> str | None:
        context = trace.get_current_span().get_span_context()
        return format(context.trace_id, "032x") if context.is_valid else None

    def shutdown(self) -> None:
        for instrumentor in self._instrumentors:
            instrumentor.uninstrument()
        self._provider.shutdown()
