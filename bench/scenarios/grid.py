"""Scenario 10, the grid: tokenrelay and Nchan side by side at every point of 10 jobs x
{10, 100, 500} viewers each x {20, 50, 100} tokens/s (quick: {10, 100} x {20, 100}).

At each point the two are measured in turn (ours, Nchan, ours, Nchan, ...) with the same
token lists and pace. The target per point: upstream tokens delivered per hub CPU-second at
least Nchan's (ratio >= 1.0), and p99 latency (ours upstream -> viewer, Nchan's publish ->
viewer) no worse than Nchan's (ratio <= 1.0).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.context import Context, Run
from bench.peers.hubs import install
from bench.peers.runs import run_nchan_fanout
from bench.scenarios.fanout import FANOUT_JOBS
from bench.scenarios.live import LiveSpec, run_live
from bench.scenarios.peers import fanout_ratios

GRID_VIEWERS = (10, 100, 500)
GRID_RATES = (20.0, 50.0, 100.0)
QUICK_VIEWERS = (10, 100)
QUICK_RATES = (20.0, 100.0)


def grid_points(ctx: Context) -> list[tuple[int, float]]:
    """(viewers per job, tokens/s) of every point, viewers first."""
    viewers, rates = (QUICK_VIEWERS, QUICK_RATES) if ctx.quick else (GRID_VIEWERS, GRID_RATES)
    return [(v, r) for v in viewers for r in rates]


def grid_tokens(ctx: Context, rate: float) -> int:
    """Tokens per job: a window of about 8 s (quick: 4 s) at ``rate``, so that each point's
    figures rest on a similar stretch of time whatever the rate."""
    seconds, floor = (4, 80) if ctx.quick else (8, 160)
    return max(floor, int(rate * seconds))


def verdict(row: dict[str, Any]) -> str:
    """``yes`` when both targets are met, else ``no:`` and the ones that failed."""
    tokens, p99 = row.get("tokens_per_cpu_s_ratio"), row.get("e2e_p99_ratio")
    if tokens is None or p99 is None:
        return "-"
    failed = [name for name, bad in (("tok/CPU-s", tokens < 1.0), ("p99", p99 > 1.0)) if bad]
    return "no: " + ", ".join(failed) if failed else "yes"


async def grid(ctx: Context) -> list[dict[str, Any]]:
    """One row per point: both systems' medians, the ratios of the medians, and the ratios
    of each side-by-side pair (``pairs``)."""
    # Without Nchan our side is still measured: its rows then say what could not be compared.
    problem = install("nchan")
    if problem:
        ctx.log(problem)
    rows: list[dict[str, Any]] = []
    for per_job, rate in grid_points(ctx):
        viewers = FANOUT_JOBS * per_job
        tokens = grid_tokens(ctx, rate)
        label = f"{FANOUT_JOBS} jobs x {per_job} viewers at {rate:g} tok/s"
        spec = LiveSpec(jobs=FANOUT_JOBS, viewers=viewers, tokens=tokens, rate=rate, label=label)

        async def ours(workdir: Path, spec: LiveSpec = spec) -> dict[str, Any]:
            return await run_live(spec, workdir, ctx.cores)

        async def nchan(
            workdir: Path, viewers: int = viewers, tokens: int = tokens, rate: float = rate
        ) -> dict[str, Any]:
            return await run_nchan_fanout(FANOUT_JOBS, viewers, tokens, rate, workdir, ctx.cores)

        name = f"grid-{FANOUT_JOBS}x{viewers}-r{rate:g}"
        runs: dict[str, Run] = {f"{name}-tokenrelay": ours}
        if not problem:
            runs[f"{name}-nchan"] = nchan
        measured = await ctx.measure_together(runs)
        row: dict[str, Any] = {
            "label": label,
            "kind": "grid",
            "jobs": FANOUT_JOBS,
            "viewers_per_job": per_job,
            "viewers": viewers,
            "rate": rate,
            "tokens_per_job": tokens,
            "tokenrelay": measured[0],
        }
        if problem:
            row.update(nchan_unavailable=problem, met="not measured")
        else:
            row.update(nchan=measured[1], **fanout_ratios(measured[0], measured[1]))
            pairs = zip(ctx.raw[f"{name}-tokenrelay"], ctx.raw[f"{name}-nchan"], strict=True)
            row["pairs"] = [fanout_ratios(a, b) for a, b in pairs]
            row["met"] = verdict(row)
        rows.append(row)
    return rows
