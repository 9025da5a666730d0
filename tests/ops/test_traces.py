"""Traces with the SDK's in-memory exporter: one trace id spans the gateway's POST /v1/jobs,
the worker's run of the job, its Redis writes, its upstream call and the upstream's server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from service.contract.keys import job_record_key
from service.contract.store.redis_client import AnyRedis
from service.contract.telemetry.tracing import Tracing, trace_id_of, tracing_requested
from service.contract.telemetry.tracing_otel import OtelTracing
from service.contract.telemetry.tracing_setup import setup_tracing
from service.gateway.app import create_app
from simulator.cli import start_simulator
from simulator.config import SimConfig
from tests.conftest import make_settings
from tests.jobs_api import submit, wait_until_ended
from tests.sse_client import read_stream
from worker.main import serve_worker


@pytest.fixture
def traced() -> Iterator[tuple[OtelTracing, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    tracing = OtelTracing.with_exporter(exporter, service_name="tokenrelay-test")
    yield tracing, exporter
    tracing.shutdown()


def _trace(spans: list[ReadableSpan], trace_id: int) -> list[ReadableSpan]:
    return [span for span in spans if span.context.trace_id == trace_id]


async def test_one_trace_spans_gateway_worker_redis_and_upstream(
    traced: tuple[OtelTracing, InMemorySpanExporter],
    redis: AnyRedis,
    redis_url: str,
    http: aiohttp.ClientSession,
) -> None:
    tracing, exporter = traced
    # Started after the instrumentation, so the simulated upstream traces its side too.
    runner, upstream_url = await start_simulator(
        SimConfig(tokens_per_second=400, default_tokens=20, models=["tokenrelay-sim"])
    )
    settings = make_settings(redis_url=redis_url, upstream_url=upstream_url, worker_metrics_port=0)
    stop = asyncio.Event()
    try:
        async with TestClient(TestServer(await create_app(settings, redis, tracing=tracing))) as gw:
            worker = asyncio.create_task(serve_worker(settings, stop, tracing=tracing))
            job = await submit(gw, "a parser\n#sim tokens=20 rate=400")
            reading = await read_stream(http, str(gw.make_url(job["events_url"])))
            assert reading.events[-1].event == "done"
            await wait_until_ended(gw, job["id"])
            stop.set()
            await worker
    finally:
        await runner.cleanup()
    spans = list(exporter.get_finished_spans())

    submit_span = next(s for s in spans if s.name == "POST /v1/jobs")
    assert submit_span.kind is SpanKind.SERVER
    trace_id = submit_span.context.trace_id
    stored = await redis.hget(job_record_key(job["id"]), "traceparent")
    assert isinstance(stored, bytes) and trace_id_of(stored.decode()) == format(trace_id, "032x")
    in_trace = _trace(spans, trace_id)
    by_id = {span.context.span_id: span for span in in_trace}

    run = next(s for s in in_trace if s.name == "tokenrelay.job")
    assert run.kind is SpanKind.CONSUMER
    assert run.attributes is not None and run.attributes["tokenrelay.job_id"] == job["id"]
    assert run.parent is not None and run.parent.span_id == submit_span.context.span_id
    attempt = next(s for s in in_trace if s.name == "tokenrelay.attempt")
    assert attempt.parent is not None and attempt.parent.span_id == run.context.span_id
    call = next(s for s in in_trace if s.kind is SpanKind.CLIENT and s.name == "POST")
    assert call.parent is not None and call.parent.span_id == attempt.context.span_id
    upstream = next(s for s in in_trace if s.name == "POST /v1/chat/completions")
    assert upstream.kind is SpanKind.SERVER
    assert upstream.parent is not None and upstream.parent.span_id == call.context.span_id
    writes = [s for s in in_trace if s.name.startswith("EVALSHA")]
    assert writes, "no Redis write in the job's trace"
    for write in writes:
        assert write.parent is not None and write.parent.span_id in by_id
    services = {s.resource.attributes["service.name"] for s in in_trace}
    assert services == {"tokenrelay-test"}

    # Viewer tokens never reach a span (they ride in ?token=).
    for span in spans:
        for value in (span.attributes or {}).values():
            assert job["viewer_token"] not in str(value)


def test_tracing_is_off_unless_otel_variables_ask_for_it() -> None:
    assert not tracing_requested({})
    assert not tracing_requested({"OTEL_SERVICE_NAME": "x"})
    assert not tracing_requested({"OTEL_TRACES_EXPORTER": "none"})
    assert not tracing_requested(
        {"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}
    )
    assert tracing_requested({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert tracing_requested({"OTEL_TRACES_EXPORTER": "console"})
    off = setup_tracing("tokenrelay-test", {})
    assert type(off) is Tracing and not off.enabled
    with off.span("nothing", parent="00-" + "1" * 32 + "-" + "2" * 16 + "-01") as span:
        assert span is None
    assert off.current_traceparent() is None and off.current_trace_id() is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "4bf92f3577b34da6a3ce929d0e0e4736",
        ),
        ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", None),
        ("garbage", None),
        (None, None),
    ],
)
def test_trace_id_of_a_traceparent(value: Any, expected: str | None) -> None:
    assert trace_id_of(value) == expected
