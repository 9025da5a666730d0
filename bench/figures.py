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


def token_figures(figures: dict[str, Any]) -> dict[str, Any]:
    """Delivered upstream tokens per second and per hub CPU-second (``tokens_delivered``
    already in ``figures``): the unit that does not favour merging tokens into events."""
    tokens = figures.get("tokens_delivered")
    return {
        "tokens_per_s": per(tokens, figures.get("window_s")),
        "tokens_per_hub_cpu_s": per(tokens, figures.get("hub_cpu_s")),
        "hub_us_per_token": per(figures.get("hub_cpu_s"), tokens, 1e6),
    }


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


def _cpu(info: dict[str, Any]) -> float:
    return float(info.get("used_cpu_sys", 0.0)) + float(info.get("used_cpu_user", 0.0))


def _calls(info: dict[str, Any], command: str) -> int:
    stat = info.get(f"cmdstat_{command}")
    return int(stat.get("calls", 0)) if isinstance(stat, dict) else 0


def cluster_figures(
    before: dict[int, dict[str, Any]],
    after: dict[int, dict[str, Any]],
    primaries: list[int],
    window_s: float,
    tokens: int,
    streams: dict[int, int],
    lanes: dict[int, int],
) -> dict[str, Any]:
    """Per-primary and summed Redis figures of a cluster run, from each node's ``INFO``
    before and after the window (ports in ``primaries`` in slot order: ``p1`` owns slot 0).

    ``redis_tokens_per_s``: upstream tokens written into Redis per second of the window;
    ``redis_xadd_per_s``/``redis_cmds_per_s``: XADD calls (inside scripts too) and commands
    of every primary per second; ``p<n>_cpu_s``: ``used_cpu_sys + used_cpu_user`` delta of
    primary n (all its threads); ``p<n>_streams``: job event streams it holds; ``p<n>_lanes``:
    lanes (of ``service.contract.keys.LANES``) whose slot it serves; ``redis_getkeys_per_token``:
    ``COMMAND GETKEYS`` calls, which redis-py's cluster client sends (to one node) to find the
    slot of a command with movable keys such as ``XREAD`` and ``XREADGROUP``.
    """
    out: dict[str, Any] = {"primaries": len(primaries), "redis_window_s": window_s}
    cpu_total = 0.0
    commands = xadds = getkeys = 0
    for n, port in enumerate(primaries, 1):
        old, new = before[port], after[port]
        cpu = _cpu(new) - _cpu(old)
        count = int(new["total_commands_processed"]) - int(old["total_commands_processed"])
        xadd = _calls(new, "xadd") - _calls(old, "xadd")
        keys = _calls(new, "command|getkeys") - _calls(old, "command|getkeys")
        cpu_total += cpu
        commands += count
        xadds += xadd
        getkeys += keys
        out[f"p{n}_cpu_s"] = cpu
        out[f"p{n}_cpu_share"] = per(cpu, window_s)
        out[f"p{n}_cmds_per_s"] = per(count, window_s)
        out[f"p{n}_xadd_per_s"] = per(xadd, window_s)
        out[f"p{n}_getkeys_per_s"] = per(keys, window_s)
        out[f"p{n}_streams"] = streams.get(port, 0)
        out[f"p{n}_lanes"] = lanes.get(port, 0)
        out[f"p{n}_clients"] = int(new.get("connected_clients", 0))
    replicas = [port for port in after if port not in primaries]
    out["replicas_cpu_s"] = sum(_cpu(after[p]) - _cpu(before[p]) for p in replicas)
    out["primaries_cpu_s"] = cpu_total
    out["primary_cpu_max_share"] = max(
        (out[f"p{n}_cpu_share"] or 0.0 for n in range(1, len(primaries) + 1)), default=None
    )
    out["redis_tokens_per_s"] = per(tokens, window_s)
    out["redis_xadd_per_s"] = per(xadds, window_s)
    out["redis_cmds_per_s"] = per(commands, window_s)
    out["redis_cpu_us_per_token"] = per(cpu_total, tokens, 1e6)
    out["redis_xadd_per_token"] = per(xadds, tokens)
    out["redis_getkeys_per_token"] = per(getkeys, tokens)
    return out
