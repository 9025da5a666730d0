"""Scenario 9, every core of a host: scenario 1's fan-out served by one gateway process and
by ``tokenrelay gateway --processes N`` (``--gateway-processes``, default 2) on one port,
measured in turn (1, N, 1, N, ...). Pinned as everywhere: the first gateway process on core
1, the second on core 0 with Redis, the worker, the simulator and the load generator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.context import Context, Run
from bench.scenarios.fanout import FANOUT_JOBS, FANOUT_RATE, fanout_tokens
from bench.scenarios.live import LiveSpec, run_live
from bench.stats import ratio


def hostscale_sizes(ctx: Context) -> list[int]:
    """Viewer counts (over 10 jobs)."""
    return [1000] if ctx.quick else [1000, 3000]


async def hostscale(ctx: Context) -> list[dict[str, Any]]:
    """1 vs N gateway processes at each size; rows carry the N / 1 ratios."""
    rows: list[dict[str, Any]] = []
    many = ctx.gateway_processes
    for viewers in hostscale_sizes(ctx):
        runs: dict[str, Run] = {}
        for count in (1, many):
            spec = LiveSpec(
                jobs=FANOUT_JOBS,
                viewers=viewers,
                tokens=fanout_tokens(ctx),
                rate=FANOUT_RATE,
                label=f"{FANOUT_JOBS} jobs x {viewers} viewers, {count} gateway process(es)",
                gateway_processes=count,
            )

            async def run(workdir: Path, spec: LiveSpec = spec) -> dict[str, Any]:
                return await run_live(spec, workdir, ctx.cores)

            runs[f"hostscale-{viewers}-p{count}"] = run
        one, more = await ctx.measure_together(runs)
        rows.append(
            {
                "label": f"{FANOUT_JOBS} jobs x {viewers} viewers",
                "viewers": viewers,
                "processes": many,
                "one": one,
                "many": more,
                "tokens_per_s_ratio": ratio(more.get("tokens_per_s"), one.get("tokens_per_s")),
                "tokens_per_cpu_s_ratio": ratio(
                    more.get("tokens_per_hub_cpu_s"), one.get("tokens_per_hub_cpu_s")
                ),
                "lat_p99_ratio": ratio(more.get("lat_p99_ms"), one.get("lat_p99_ms")),
            }
        )
    return rows
