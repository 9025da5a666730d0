"""Choosing the process's tracing from the ``OTEL_*`` variables: off (the no-op
:class:`Tracing`) unless they ask for traces and OpenTelemetry is installed."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from service.contract.telemetry.tracing import Tracing, tracing_requested

log = logging.getLogger(__name__)

_EXPORTERS = frozenset({"otlp", "console"})


def setup_tracing(service_name: str, environ: Mapping[str, str] | None = None) -> Tracing:
    """Tracing as the ``OTEL_*`` variables configure it; :class:`Tracing` (off) by default.

    ``service_name`` is used unless ``OTEL_SERVICE_NAME`` names the service.
    """
    env = os.environ if environ is None else environ
    if not tracing_requested(env):
        return Tracing()
    try:
        from service.contract.telemetry.tracing_otel import OtelTracing
    except ImportError as exc:
        log.warning(
            "OTEL_* variables ask for traces but OpenTelemetry is not installed "
            "(pip install 'tokenrelay[otel]'); tracing stays off",
            extra={"error": str(exc)},
        )
        return Tracing()
    exporter = env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() or "otlp"
    if exporter not in _EXPORTERS:
        log.warning("unknown OTEL_TRACES_EXPORTER; using otlp", extra={"exporter": exporter})
        exporter = "otlp"
    tracing = OtelTracing.from_exporter_name(exporter, service_name=service_name)
    log.info("tracing on", extra={"exporter": exporter})
    return tracing
