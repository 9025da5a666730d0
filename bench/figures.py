"""Turning a run's raw numbers (load-generator report, CPU window, Redis INFO) into figures."""

from __future__ import annotations

from typing import Any

from bench.procstat import CpuWindow
from bench.stats import per, percentile


def latency_figures(report: dict[str, Any], prefix: str, key: str) -> dict[str, Any]:
    """p50/p99/max of a latency list (ms) of the report, named ``<prefix>_p50_ms`` ..."""
    values = report.get(key) or []
    return {
        f"{prefix}_p50_ms": percentile(values, 50),
        f"{prefix}_p99_ms": percentile(values, 99),
        f"{prefix}_max_ms": max(values) if values else None,
        f"{prefix}_samples": len(values),
    }


def process_figures(
    report: dict[str, Any],
    window: CpuWindow,
    rss_idle: int,
    rss_connected: int,
    rss_peak: int,
    viewers: int,
) -> dict[str, Any]:
    """Throughput, CPU per delivered work and memory per viewer of the hub process."""
    first = report.get("first_stamp_ms")
    duration = report["last_end"] - first / 1000 if first else None
    events, chars = report["events"], report["chars"]
    hub_cpu = window.cpu.get("hub")
    figures: dict[str, Any] = {
        "events": events,
        "chars": chars,
        "window_s": duration,
        "events_per_s": per(events, duration),
        "chars_per_s": per(chars, duration),
        "hub_cpu_s": hub_cpu,
        "hub_cpu_s_per_M_events": per(hub_cpu, events, 1e6),
        "chars_per_hub_cpu_s": per(chars, hub_cpu),
        "hub_rss_mb_peak": rss_peak / 2**20,
        "hub_kb_per_viewer": (rss_connected - rss_idle) / 1024 / viewers if viewers else None,
        "bytes_per_viewer_median": percentile(report.get("bytes_per_viewer") or [], 50),
    }
    for name, seconds in window.cpu.items():
        if name != "hub":
            figures[f"{name}_cpu_s"] = seconds
    for core, busy in window.core_busy.items():
        figures[f"core{core}_busy"] = busy
    return figures


def redis_figures(before: dict[str, Any], after: dict[str, Any], tokens: int) -> dict[str, Any]:
    """Redis commands per upstream token, in total and for the busiest commands."""
    total = after["total_commands_processed"] - before["total_commands_processed"]
    calls: dict[str, int] = {}
    usec = 0
    for key, value in after.items():
        if key.startswith("cmdstat_") and isinstance(value, dict):
            old = before.get(key, {})
            calls[key[8:]] = int(value.get("calls", 0)) - int(old.get("calls", 0))
            usec += int(value.get("usec", 0)) - int(old.get("usec", 0))
    top = sorted(calls.items(), key=lambda item: -item[1])[:6]
    return {
        "redis_cmds_per_token": per(total, tokens),
        "redis_usec_per_token": per(usec, tokens),
        "redis_top_cmds_per_token": {name: round(n / tokens, 4) for name, n in top if n},
    }
