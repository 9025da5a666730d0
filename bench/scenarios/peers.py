"""Scenario 5: the peers side by side with tokenrelay, same run, same machine, same Redis
binary; each comparison row carries the ratios tokenrelay / peer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.context import Context
from bench.peers.hubs import install
from bench.peers.runs import run_nchan_fanout, run_nchan_storm, run_resumable_fanout
from bench.scenarios.fanout import FANOUT_JOBS, FANOUT_RATE, fanout_at, fanout_sizes, fanout_tokens
from bench.scenarios.storm import run_storm, storm_viewers
from bench.stats import per, ratio

RESUMABLE_VIEWERS = 100


def fanout_ratios(ours: dict[str, Any], peer: dict[str, Any]) -> dict[str, Any]:
    """tokenrelay / peer for throughput per hub CPU-second, p99 latency, memory per viewer.

    Throughput compares characters and upstream tokens delivered (tokens may be merged into
    fewer events; a peer run without ``tokens_delivered`` has no token ratio); latency
    compares the peer's publish-to-viewer time with tokenrelay's upstream-to-viewer time
    (which includes the worker's merge window) and, separately, its Redis-write-to-viewer time.
    """
    return {
        "chars_per_cpu_s_ratio": ratio(
            ours.get("chars_per_hub_cpu_s"), peer.get("chars_per_hub_cpu_s")
        ),
        "tokens_per_cpu_s_ratio": ratio(
            ours.get("tokens_per_hub_cpu_s"), peer.get("tokens_per_hub_cpu_s")
        ),
        "e2e_p99_ratio": ratio(ours.get("e2e_p99_ms"), peer.get("e2e_p99_ms")),
        "write_p99_ratio": ratio(ours.get("lat_p99_ms"), peer.get("e2e_p99_ms")),
        "kb_per_viewer_ratio": ratio(ours.get("hub_kb_per_viewer"), peer.get("hub_kb_per_viewer")),
        "peak_rss_ratio": ratio(ours.get("hub_rss_mb_peak"), peer.get("hub_rss_mb_peak")),
    }


async def nchan(ctx: Context) -> list[dict[str, Any]]:
    """Nchan against scenarios 1 and 3."""
    problem = install("nchan")
    if problem:
        ctx.log(problem)
        return [{"label": "Nchan", "unavailable": problem}]
    rows: list[dict[str, Any]] = []
    tokens = fanout_tokens(ctx)
    for viewers in fanout_sizes(ctx):
        ours = await fanout_at(ctx, viewers)

        async def run(workdir: Path, viewers: int = viewers) -> dict[str, Any]:
            return await run_nchan_fanout(
                FANOUT_JOBS, viewers, tokens, FANOUT_RATE, workdir, ctx.cores
            )

        peer = await ctx.measure(f"nchan-fanout-{viewers}", run)
        rows.append({**peer, "kind": "fanout", "tokenrelay": ours, **fanout_ratios(ours, peer)})
    viewers = storm_viewers(ctx)

    async def ours_storm(workdir: Path) -> dict[str, Any]:
        return {
            "label": f"{viewers} viewers, 4,000-token job",
            **await run_storm(viewers, workdir, ctx.cores),
        }

    async def peer_storm(workdir: Path) -> dict[str, Any]:
        return await run_nchan_storm(viewers, workdir, ctx.cores)

    ours = await ctx.measure(f"storm-{viewers}", ours_storm)
    peer = await ctx.measure(f"nchan-storm-{viewers}", peer_storm)
    rows.append(
        {
            **peer,
            "kind": "storm",
            "tokenrelay": ours,
            "catchup_p99_ratio": ratio(ours.get("catchup_p99_s"), peer.get("catchup_p99_s")),
            "hub_cpu_ratio": ratio(ours.get("hub_cpu_s"), peer.get("hub_cpu_s")),
        }
    )
    return rows


async def resumable(ctx: Context) -> list[dict[str, Any]]:
    """resumable-stream: one producer, 100 resuming consumers; tokenrelay: 1 job, 100 viewers."""
    problem = install("resumable-stream")
    if problem:
        ctx.log(problem)
        return [{"label": "resumable-stream", "unavailable": problem}]
    tokens = fanout_tokens(ctx)
    ours = await fanout_at(ctx, RESUMABLE_VIEWERS, jobs=1)

    async def run(workdir: Path) -> dict[str, Any]:
        return await run_resumable_fanout(
            RESUMABLE_VIEWERS, tokens, FANOUT_RATE, workdir, ctx.cores
        )

    peer = await ctx.measure(f"resumable-{RESUMABLE_VIEWERS}", run)
    events_ratio = ratio(
        per(ours.get("events"), ours.get("hub_cpu_s")),
        per(peer.get("events"), peer.get("hub_cpu_s")),
    )
    return [
        {
            **peer,
            "kind": "fanout",
            "tokenrelay": ours,
            **fanout_ratios(ours, peer),
            "events_per_cpu_s_ratio": events_ratio,
        }
    ]
