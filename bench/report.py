"""Readable tables of a benchmark run's figures."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Column = tuple[str, Callable[[dict[str, Any]], Any], str]


def _get(key: str) -> Callable[[dict[str, Any]], Any]:
    return lambda row: row.get(key)


def _ours(key: str) -> Callable[[dict[str, Any]], Any]:
    return lambda row: (row.get("tokenrelay") or {}).get(key)


def _fmt(value: Any, spec: str) -> str:
    if value is None:
        return "-"
    if spec == "%":
        return f"{value * 100:.1f}%"
    if spec == "x":
        return f"{value:.2f}x"
    if isinstance(value, int | float) and not isinstance(value, bool):
        if spec == "d":
            return f"{round(value):d}"
        return format(value, spec)
    return str(value)


def table(title: str, rows: list[dict[str, Any]], columns: list[Column]) -> str:
    """A plain-text table with a title."""
    header = [name for name, _, _ in columns]
    body = [[_fmt(get(row), spec) for _, get, spec in columns] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(header)]
    lines = [title, "  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in body]
    return "\n".join(lines)


FANOUT: list[Column] = [
    ("viewers", _get("viewers"), "d"),
    ("events/s", _get("events_per_s"), ",.0f"),
    ("chars/s", _get("chars_per_s"), ",.0f"),
    ("p50 ms", _get("lat_p50_ms"), ".1f"),
    ("p99 ms", _get("lat_p99_ms"), ".1f"),
    ("e2e p99", _get("e2e_p99_ms"), ".1f"),
    ("CPU s/M ev", _get("hub_cpu_s_per_M_events"), ".1f"),
    ("chars/CPU-s", _get("chars_per_hub_cpu_s"), ",.0f"),
    ("KB/viewer", _get("hub_kb_per_viewer"), ".1f"),
    ("RSS MB", _get("hub_rss_mb_peak"), ".0f"),
    ("exact", _get("exact"), "%"),
    ("cut", _get("cutoffs"), ".0f"),
    ("core0", _get("core0_busy"), "%"),
    ("core1", _get("core1_busy"), "%"),
]
GENERATIONS: list[Column] = [
    ("jobs", _get("jobs"), "d"),
    ("worker CPU s/1k tok", _get("worker_cpu_per_1k_tokens"), ".3f"),
    ("redis cmds/token", _get("redis_cmds_per_token"), ".2f"),
    ("redis us/token", _get("redis_usec_per_token"), ".1f"),
    ("e2e p50", _get("e2e_p50_ms"), ".1f"),
    ("e2e p99", _get("e2e_p99_ms"), ".1f"),
    ("write p99", _get("lat_p99_ms"), ".1f"),
    ("upstream late s", _get("upstream_late_s"), ".2f"),
    ("exact", _get("exact"), "%"),
    ("core0", _get("core0_busy"), "%"),
    ("core1", _get("core1_busy"), "%"),
]
STORM: list[Column] = [
    ("", _get("label"), "s"),
    ("caught up", _get("caught_up"), "%"),
    ("p50 s", _get("catchup_p50_s"), ".3f"),
    ("p99 s", _get("catchup_p99_s"), ".3f"),
    ("max s", _get("catchup_max_s"), ".3f"),
    ("reconnect p99 s", _get("reconnect_p99_s"), ".3f"),
    ("connect p99 s", _get("connect_p99_s"), ".3f"),
    ("exact", _get("exact"), "%"),
    ("conns", _get("connections"), ".0f"),
    ("hub CPU s", _get("hub_cpu_s"), ".2f"),
    # during the catch-up (drop -> p99 caught up): each core's busy share, the share of a
    # core the hub used and its CPU seconds, the load generator's share
    ("core0", _get("catchup_core0_busy"), "%"),
    ("core1", _get("catchup_core1_busy"), "%"),
    ("hub", _get("catchup_hub_cpu_share"), "%"),
    ("its CPU s", _get("catchup_hub_cpu_s"), ".2f"),
    ("loadgen", _get("catchup_loadgen_cpu_share"), "%"),
]
LATE: list[Column] = [
    ("viewers", _get("viewers"), "d"),
    ("entries", _get("stream_entries"), "d"),
    ("all done s", _get("all_done_s"), ".2f"),
    ("p50 s", _get("full_text_p50_s"), ".3f"),
    ("p99 s", _get("full_text_p99_s"), ".3f"),
    ("bytes/viewer", _get("bytes_per_viewer_median"), ",.0f"),
    ("events/viewer", _get("events_per_viewer"), ".1f"),
    ("exact", _get("exact"), "%"),
    ("hub CPU ms/viewer", _get("hub_cpu_ms_per_viewer"), ".2f"),
]
IDLE: list[Column] = [
    ("viewers", _get("viewers"), "d"),
    ("connected", _get("connected"), "d"),
    ("RSS MB", _get("hub_rss_mb"), ".1f"),
    ("KB/viewer", _get("hub_kb_per_viewer"), ".1f"),
]
PEER_FANOUT: list[Column] = [
    ("", _get("label"), "s"),
    ("tok/CPU-s", _get("tokens_per_hub_cpu_s"), ",.0f"),
    ("ours", _ours("tokens_per_hub_cpu_s"), ",.0f"),
    ("ratio", _get("tokens_per_cpu_s_ratio"), "x"),
    ("p99 ms", _get("e2e_p99_ms"), ".1f"),
    ("ours e2e", _ours("e2e_p99_ms"), ".1f"),
    ("ratio", _get("e2e_p99_ratio"), "x"),
    ("ours write", _ours("lat_p99_ms"), ".1f"),
    ("KB/viewer", _get("hub_kb_per_viewer"), ".1f"),
    ("ours", _ours("hub_kb_per_viewer"), ".1f"),
    ("ratio", _get("kb_per_viewer_ratio"), "x"),
    ("exact", _get("exact"), "%"),
]
PEER_STORM: list[Column] = [
    ("", _get("label"), "s"),
    ("p99 s", _get("catchup_p99_s"), ".3f"),
    ("ours", _ours("catchup_p99_s"), ".3f"),
    ("ratio", _get("catchup_p99_ratio"), "x"),
    ("exact", _get("exact"), "%"),
    ("ours", _ours("exact"), "%"),
    ("hub CPU s", _get("hub_cpu_s"), ".2f"),
    ("ours", _ours("hub_cpu_s"), ".2f"),
]


def _per_primary(key: str, spec: str) -> Callable[[dict[str, Any]], Any]:
    """``p1 / p2 / ...`` values of a per-primary figure (none in the ratio column)."""

    def get(row: dict[str, Any]) -> Any:
        count = row.get("primaries")
        if row.get("kind") == "ratio" or not isinstance(count, int | float):
            return None
        return " / ".join(_fmt(row.get(f"p{n}_{key}"), spec) for n in range(1, int(count) + 1))

    return get


CLUSTER: list[Column] = [
    ("tokens/s into Redis", _get("redis_tokens_per_s"), ",.0f"),
    ("XADD/s, all primaries", _get("redis_xadd_per_s"), ",.0f"),
    ("commands/s, all primaries", _get("redis_cmds_per_s"), ",.0f"),
    ("redis cmds/token", _get("redis_cmds_per_token"), ".3f"),
    ("XADD/token", _get("redis_xadd_per_token"), ".3f"),
    ("COMMAND GETKEYS/token", _get("redis_getkeys_per_token"), ".3f"),
    ("commands/s per primary", _per_primary("cmds_per_s", ",.0f"), "s"),
    ("commandstats us/token", _get("redis_usec_per_token"), ".2f"),
    ("CPU s per primary", _per_primary("cpu_s", ".2f"), "s"),
    ("  share of a core", _per_primary("cpu_share", "%"), "s"),
    ("CPU s, all primaries", _get("primaries_cpu_s"), ".2f"),
    ("primaries CPU us/token", _get("redis_cpu_us_per_token"), ".1f"),
    ("CPU s, all replicas", _get("replicas_cpu_s"), ".2f"),
    ("job streams per primary", _per_primary("streams", "d"), "s"),
    ("lanes per primary", _per_primary("lanes", "d"), "s"),
    ("clients per primary", _per_primary("clients", "d"), "s"),
    ("worker CPU s/1k tok", _get("worker_cpu_per_1k_tokens"), ".3f"),
    ("e2e p50 ms", _get("e2e_p50_ms"), ".1f"),
    ("e2e p99 ms", _get("e2e_p99_ms"), ".1f"),
    ("write p99 ms", _get("lat_p99_ms"), ".1f"),
    ("exact", _get("exact"), "%"),
    ("upstream late s", _get("upstream_late_s"), ".2f"),
    ("window s", _get("redis_window_s"), ".1f"),
    ("core0", _get("core0_busy"), "%"),
    ("core1", _get("core1_busy"), "%"),
]


def cluster_table(rows: list[dict[str, Any]]) -> str:
    """The cluster scenario transposed: one column per cluster size, then the ratio column."""
    first = rows[0]
    title = (
        f"Redis Cluster, many generations: {first.get('jobs', 0):.0f} jobs at "
        f"{first.get('rate', 0):g} tokens/s x {first.get('tokens_per_job', 0):.0f} tokens, "
        "one viewer each; primaries with one replica each"
    )
    header = ["", *(str(row.get("label", "")) for row in rows)]
    body = [
        [
            name,
            *(_fmt(get(row), "x" if row.get("kind") == "ratio" else spec) for row in rows),
        ]
        for name, get, spec in CLUSTER
    ]
    widths = [max(len(header[i]), *(len(r[i]) for r in body)) for i in range(len(header))]
    return "\n".join([title, *(_line(cells, widths) for cells in [header, *body])])


def _line(cells: list[str], widths: list[int]) -> str:
    """The first cell left-aligned (a figure's name), the others right-aligned."""
    first, *rest = zip(cells, widths, strict=True)
    return "  ".join([first[0].ljust(first[1]), *(c.rjust(w) for c, w in rest)])


def _of(side: str, key: str) -> Callable[[dict[str, Any]], Any]:
    return lambda row: (row.get(side) or {}).get(key)


HOSTSCALE: list[Column] = [
    ("viewers", _get("viewers"), "d"),
    ("N", _get("processes"), "d"),
    ("tokens/s 1p", _of("one", "tokens_per_s"), ",.0f"),
    ("Np", _of("many", "tokens_per_s"), ",.0f"),
    ("ratio", _get("tokens_per_s_ratio"), "x"),
    ("tok/CPU-s 1p", _of("one", "tokens_per_hub_cpu_s"), ",.0f"),
    ("Np", _of("many", "tokens_per_hub_cpu_s"), ",.0f"),
    ("ratio", _get("tokens_per_cpu_s_ratio"), "x"),
    ("hub CPU s 1p", _of("one", "hub_cpu_s"), ".2f"),
    ("Np", _of("many", "hub_cpu_s"), ".2f"),
    ("p99 ms 1p", _of("one", "lat_p99_ms"), ".1f"),
    ("Np", _of("many", "lat_p99_ms"), ".1f"),
    ("exact 1p", _of("one", "exact"), "%"),
    ("Np", _of("many", "exact"), "%"),
    ("core0 1p", _of("one", "core0_busy"), "%"),
    ("Np", _of("many", "core0_busy"), "%"),
    ("core1 1p", _of("one", "core1_busy"), "%"),
    ("Np", _of("many", "core1_busy"), "%"),
]


GRID: list[Column] = [
    ("v/job", _get("viewers_per_job"), "d"),
    ("tok/s", _get("rate"), "g"),
    ("tok/job", _get("tokens_per_job"), "d"),
    ("tok/CPU-s Nchan", _of("nchan", "tokens_per_hub_cpu_s"), ",.0f"),
    ("ours", _ours("tokens_per_hub_cpu_s"), ",.0f"),
    ("ratio", _get("tokens_per_cpu_s_ratio"), "x"),
    ("p99 ms Nchan", _of("nchan", "e2e_p99_ms"), ".1f"),
    ("ours e2e", _ours("e2e_p99_ms"), ".1f"),
    ("ratio", _get("e2e_p99_ratio"), "x"),
    ("ours write", _ours("lat_p99_ms"), ".1f"),
    ("us/tok Nchan", _of("nchan", "hub_us_per_token"), ".2f"),
    ("ours", _ours("hub_us_per_token"), ".2f"),
    ("exact Nchan", _of("nchan", "exact"), "%"),
    ("ours", _ours("exact"), "%"),
    ("core0 Nchan", _of("nchan", "core0_busy"), "%"),
    ("ours", _ours("core0_busy"), "%"),
    # A token source behind its schedule offered less than the point's rate.
    ("late s Nchan", _of("nchan", "upstream_late_s"), ".2f"),
    ("ours", _ours("upstream_late_s"), ".2f"),
    ("met", _get("met"), "s"),
]


def grid_table(rows: list[dict[str, Any]]) -> str:
    """The grid, one row per point, then how many points met both targets."""
    title = "10. Grid: tokenrelay vs Nchan, 10 jobs x v/job viewers each (ratio = tokenrelay/Nchan)"
    met = sum(row.get("met") == "yes" for row in rows)
    summary = (
        f"grid: {met} of {len(rows)} points met (tok/CPU-s ratio >= 1.00 and p99 ratio <= 1.00)"
    )
    missing = {row["nchan_unavailable"] for row in rows if "nchan_unavailable" in row}
    if missing:
        summary += "; Nchan not measured: " + "; ".join(sorted(missing))
    return "\n".join([table(title, rows, GRID), summary])


def render(sections: dict[str, list[dict[str, Any]]]) -> str:
    """Every scenario that ran, as tables."""
    out: list[str] = []
    titles = {
        "fanout": ("1. Fan-out: 10 jobs at 100 tokens/s, one gateway process", FANOUT),
        "generations": ("2. Many generations at 50 tokens/s, one viewer each", GENERATIONS),
        "storm": ("3. Reconnect storm (catch-up time after the drop)", STORM),
        "late": ("4. Late joiners of a finished job (time to full text)", LATE),
        "idle": ("Idle viewers (memory)", IDLE),
        "hostscale": ("9. Every core: 1 vs N gateway processes on one port", HOSTSCALE),
    }
    for name, rows in sections.items():
        unavailable = [row for row in rows if "unavailable" in row]
        for row in unavailable:
            out.append(f"{row['label']}: not measured: {row['unavailable']}")
        rows = [row for row in rows if "unavailable" not in row]
        if not rows:
            continue
        if name == "cluster":
            out.append(cluster_table(rows))
        elif name == "grid":
            out.append(grid_table(rows))
        elif name in titles:
            title, columns = titles[name]
            out.append(table(title, rows, columns))
        else:
            fan = [row for row in rows if row.get("kind") == "fanout"]
            storm = [row for row in rows if row.get("kind") == "storm"]
            label = "Nchan" if name == "nchan" else "resumable-stream"
            if fan:
                out.append(
                    table(
                        f"5. {label} vs tokenrelay, fan-out (ratio = tokenrelay/peer)",
                        fan,
                        PEER_FANOUT,
                    )
                )
            if storm:
                out.append(table(f"5. {label} vs tokenrelay, reconnect storm", storm, PEER_STORM))
        out.append("")
    return "\n".join(out)
