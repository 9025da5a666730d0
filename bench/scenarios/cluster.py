"""The cluster scenario: the many-generations workload (N jobs at 50 tokens/s, one viewer
each) on a local cluster of 1 primary and of 3 primaries, one replica each, the two sizes taken
in turn; tokens/s into Redis, commands per token, CPU per primary, latency, exactness and how
the jobs' keys spread over the primaries, side by side with the ratio 3 primaries / 1.

Default size 400 jobs x 500 tokens: 20,000 tokens/s offered, 10 s per job. On the 2-core
machine the worker and the simulated upstream fill core 0 (shared with every Redis node and
the load generator) from about 200 jobs on; past that the worker keeps pace by merging more
tokens into each write (fewer Redis commands per token, more latency), and only near 1,000
jobs does the upstream itself fall behind its schedule (scenario 2), when tokens/s would
measure the simulator instead of the write path. 400 is a loaded size the upstream still
holds, and the six runs (3 repeats x 2 sizes) take about two minutes. Quick: 100 jobs x 250
tokens, below core 0's saturation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.context import Context, Run
from bench.scenarios.live import LiveSpec, run_live
from bench.stats import ratio

PRIMARIES = (1, 3)
RATE = 50.0


def cluster_size(ctx: Context) -> tuple[int, int]:
    """Jobs (one viewer each) and tokens per job."""
    return (100, 250) if ctx.quick else (400, 500)


def _run(ctx: Context, spec: LiveSpec, primaries: int) -> Run:
    async def run(workdir: Path) -> dict[str, Any]:
        return await run_live(spec, workdir, ctx.cores, primaries=primaries)

    return run


def ratio_row(first: dict[str, Any], last: dict[str, Any], label: str) -> dict[str, Any]:
    """``last / first`` for every numeric figure both rows have."""
    row: dict[str, Any] = {"label": label, "kind": "ratio"}
    for key, value in last.items():
        other = first.get(key)
        numbers = (value, other)
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in numbers):
            row[key] = ratio(value, other)
    return row


async def cluster(ctx: Context) -> list[dict[str, Any]]:
    """1 primary vs 3 primaries: the two rows and their ratio."""
    jobs, tokens = cluster_size(ctx)
    runs: dict[str, Run] = {}
    for primaries in PRIMARIES:
        spec = LiveSpec(
            jobs=jobs,
            viewers=jobs,
            tokens=tokens,
            rate=RATE,
            label=f"{primaries} primar{'y' if primaries == 1 else 'ies'}",
        )
        runs[f"cluster-{primaries}p-{jobs}"] = _run(ctx, spec, primaries)
    rows = await ctx.measure_together(runs)
    return [*rows, ratio_row(rows[0], rows[-1], f"{PRIMARIES[-1]}p / {PRIMARIES[0]}p")]
