"""Scenario 3, reconnect storm: every viewer of a live 4,000-token job drops at once, halfway,
and reconnects with ``Last-Event-ID``.

A viewer has caught up when it receives an event at or past the newest event any viewer had
at the moment of the drop; the figures are the times from the drop until then, and whether
every viewer's final text is exact.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp

from bench import jobs as jobs_mod
from bench.context import Context
from bench.figures import latency_figures
from bench.pool import LoadPool
from bench.procstat import CpuWindow, Timeline
from bench.stack import Stack
from bench.stats import percentile
from service.contract.keys import job_output_key

STORM_TOKENS = 4000
STORM_RATE = 400.0


def storm_viewers(ctx: Context) -> int:
    """Viewers that drop at once."""
    return 500 if ctx.quick else 2000


def storm_figures(
    report: dict[str, Any],
    storm: dict[str, Any],
    window: CpuWindow,
    viewers: int,
    timeline: Timeline | None = None,
) -> dict[str, Any]:
    """Catch-up times, exactness and hub CPU of a storm; with a ``timeline``, how busy each
    core and process was during the catch-up (from the drop until p99 of the viewers had
    caught up): ``catchup_core0_busy`` near 1 with ``catchup_loadgen_cpu_share`` high means
    the load side held the reconnects back, ``catchup_hub_cpu_share`` near 1 the hub;
    ``catchup_hub_cpu_s``, the hub's CPU seconds in that time, is what the catch-up cost it
    (a figure that other work on a shared machine moves less than the times)."""
    catchup = report["catchup_s"]
    figures: dict[str, Any] = {
        "viewers": viewers,
        "dropped": storm["dropped"],
        "caught_up": len(catchup) / viewers,
        "catchup_p50_s": percentile(catchup, 50),
        "catchup_p99_s": percentile(catchup, 99),
        "catchup_max_s": max(catchup) if catchup else None,
        # drop -> response headers of the reconnect (the rest of catch-up is the replay)
        "reconnect_p50_s": percentile(report["reconnect_s"], 50),
        "reconnect_p99_s": percentile(report["reconnect_s"], 99),
        # drop -> the reconnect's TCP connection up and its request written (load side)
        "connect_p99_s": percentile(report.get("storm_connected_s") or [], 99),
        "finished": report["finished"] / viewers,
        "exact": report["exact"] / viewers,
        "connections": report["connections"],
        "statuses": report["statuses"],
        "errors": report["errors"],
        "mismatches": report["mismatches"],
        "hub_cpu_s": window.cpu.get("hub"),
    }
    figures.update(latency_figures(report, "lat", "lat_stamp_ms"))
    p99 = figures["catchup_p99_s"]
    if timeline is not None and p99 is not None:
        t_drop = storm["t_drop"]
        shares = timeline.window(t_drop, t_drop + p99)
        figures.update({f"catchup_{name}": value for name, value in shares.items()})
    return figures


async def wait_half(stack: Stack, job_id: str, chars: int, seconds: float) -> None:
    """Wait until the job's output holds ``chars`` characters (bytes, close enough)."""
    assert stack.redis is not None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        if await stack.redis.strlen(job_output_key(job_id)) >= chars:
            return
        await asyncio.sleep(0.01)
    raise RuntimeError("the storm's job did not get halfway in time")


async def run_storm(viewers: int, workdir: Path, cores: tuple[str, str] | None) -> dict[str, Any]:
    """One tokenrelay storm."""
    hub_cores, other_cores = cores if cores else (None, None)
    stack = Stack(workdir, gateway_cores=hub_cores, other_cores=other_cores)
    pool = LoadPool.for_viewers(viewers, other_cores)
    try:
        await stack.start_redis()
        await stack.start_simulator(STORM_RATE, STORM_TOKENS)
        await stack.start_gateway()
        assert stack.gateway and stack.redis_child
        text = jobs_mod.prompt(0, STORM_TOKENS, STORM_RATE)
        expected_text = "".join(jobs_mod.upstream_tokens(text))
        async with aiohttp.ClientSession() as session:
            (job,) = await jobs_mod.submit(session, stack.base_url, [text])
            await pool.start()
            specs = [
                {
                    "job": job.id,
                    "host": "127.0.0.1",
                    "port": stack.gateway_port,
                    "path": job.events_path,
                    "mark": True,
                    "terminal": ["done", "failed", "cancelled"],
                }
                for _ in range(viewers)
            ]
            await pool.open(specs)
            await stack.start_worker(first_job=job.id)
            assert stack.worker
            window = CpuWindow(
                {
                    "hub": [stack.gateway.pid],
                    "worker": [stack.worker.pid],
                    "redis": [stack.redis_child.pid],
                    "loadgen": pool.pids,
                }
            )
            window.begin()
            timeline = Timeline(window.pids)
            half = len(expected_text.encode()) // 2
            await wait_half(stack, job.id, half, STORM_TOKENS / STORM_RATE + 20)
            timeline.start()
            storm = await pool.storm("tokenrelay")
            await pool.wait(STORM_TOKENS / STORM_RATE + 60)
            await timeline.stop()
            window.end()
            found = await jobs_mod.records(session, stack.base_url, [job])
        output = found[job.id].get("output", "")
        report = await pool.report(
            {"mode": "tokenrelay", "expected": {job.id: output}, "head": storm["head"]}
        )
    finally:
        await pool.close()
        await stack.stop()
    figures = storm_figures(report, storm, window, viewers, timeline)
    figures["output_is_upstream_text"] = output == expected_text
    return figures


async def storm(ctx: Context) -> list[dict[str, Any]]:
    """Scenario 3."""
    viewers = storm_viewers(ctx)

    async def run(workdir: Path) -> dict[str, Any]:
        figures = await run_storm(viewers, workdir, ctx.cores)
        return {"label": f"{viewers} viewers, 4,000-token job", **figures}

    return [await ctx.measure(f"storm-{viewers}", run)]
