"""Scenario 1, fan-out: 10 live jobs at 100 tokens/s, many viewers, one gateway process;
and scenario 2, many generations: many jobs at 50 tokens/s, one viewer each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.context import Context
from bench.scenarios.live import LiveSpec, run_live

FANOUT_JOBS = 10
FANOUT_RATE = 100.0


def fanout_sizes(ctx: Context) -> list[int]:
    """Viewer counts of scenario 1."""
    return [100, 1000] if ctx.quick else [100, 1000, 5000]


def fanout_tokens(ctx: Context) -> int:
    """Tokens per job in scenario 1 (the window is tokens / 100 s long)."""
    return 500 if ctx.quick else 600


async def fanout_at(ctx: Context, viewers: int, jobs: int = FANOUT_JOBS) -> dict[str, Any]:
    """Scenario 1 at one size (also used by the peers' comparisons)."""
    spec = LiveSpec(
        jobs=jobs,
        viewers=viewers,
        tokens=fanout_tokens(ctx),
        rate=FANOUT_RATE,
        label=f"{jobs} jobs x {viewers} viewers",
    )

    async def run(workdir: Path) -> dict[str, Any]:
        return await run_live(spec, workdir, ctx.cores)

    return await ctx.measure(f"fanout-{jobs}x{viewers}", run)


async def fanout(ctx: Context) -> list[dict[str, Any]]:
    """Scenario 1 at every size."""
    return [await fanout_at(ctx, viewers) for viewers in fanout_sizes(ctx)]


async def generations(ctx: Context) -> list[dict[str, Any]]:
    """Scenario 2: 1,000 (quick: 200) concurrent jobs at 50 tokens/s, one viewer each."""
    jobs = 200 if ctx.quick else 1000
    tokens = 250 if ctx.quick else 500
    spec = LiveSpec(
        jobs=jobs, viewers=jobs, tokens=tokens, rate=50.0, label=f"{jobs} jobs x 1 viewer"
    )

    async def run(workdir: Path) -> dict[str, Any]:
        return await run_live(spec, workdir, ctx.cores)

    return [await ctx.measure(f"generations-{jobs}", run)]
