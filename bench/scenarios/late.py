"""Scenario 4, late joiners: viewers open a finished 4,000-token job all at once; and an
idle-connections check: how much a connected, silent viewer costs the gateway."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from bench import jobs as jobs_mod
from bench.context import Context, summarize
from bench.pool import LoadPool
from bench.procstat import CpuWindow, rss_bytes
from bench.stack import Stack
from bench.stats import per, percentile
from service.contract.keys import job_events_key

LATE_TOKENS = 4000


async def late(ctx: Context) -> list[dict[str, Any]]:
    """Scenario 4: one job generated once; each repeat, ``viewers`` join it at once."""
    viewers = 200 if ctx.quick else 1000
    rate = 1000.0 if ctx.quick else 400.0
    hub_cores, other_cores = ctx.cores if ctx.cores else (None, None)
    stack = Stack(ctx.workdir / "late", gateway_cores=hub_cores, other_cores=other_cores)
    runs: list[dict[str, Any]] = []
    try:
        await stack.start_redis()
        await stack.start_simulator(rate, LATE_TOKENS)
        await stack.start_gateway()
        await stack.start_worker()
        assert stack.gateway and stack.redis and stack.redis_child
        async with aiohttp.ClientSession() as session:
            (job,) = await jobs_mod.submit(
                session, stack.base_url, [jobs_mod.prompt(0, LATE_TOKENS, rate)]
            )
            found = await jobs_mod.wait_finished(
                session, stack.base_url, [job], LATE_TOKENS / rate + 30
            )
        record = found[job.id]
        output = record.get("output", "")
        entries = await stack.redis.xlen(job_events_key(job.id))
        for index in range(ctx.repeat):
            pool = LoadPool.for_viewers(viewers, other_cores)
            try:
                await pool.start()
                specs = [
                    {
                        "job": job.id,
                        "host": "127.0.0.1",
                        "port": stack.gateway_port,
                        "path": job.events_path,
                        "terminal": ["done", "failed", "cancelled"],
                    }
                    for _ in range(viewers)
                ]
                window = CpuWindow(
                    {
                        "hub": [stack.gateway.pid],
                        "redis": [stack.redis_child.pid],
                        "loadgen": pool.pids,
                    }
                )
                window.begin()
                started = time.monotonic()
                await pool.open(specs, concurrency=viewers)
                await pool.wait(120)
                wall = time.monotonic() - started
                window.end()
                report = await pool.report({"mode": "tokenrelay", "expected": {job.id: output}})
            finally:
                await pool.close()
            full = report["full_text_s"]
            figures = {
                "label": f"{viewers} viewers join a finished {LATE_TOKENS}-token job",
                "viewers": viewers,
                "stream_entries": entries,
                "output_chars": len(output),
                "all_done_s": wall,
                "full_text_p50_s": percentile(full, 50),
                "full_text_p99_s": percentile(full, 99),
                "full_text_max_s": max(full) if full else None,
                "bytes_per_viewer_median": percentile(report["bytes_per_viewer"], 50),
                "events_per_viewer": per(report["events"], viewers),
                "exact": report["exact"] / viewers,
                "hub_cpu_s": window.cpu["hub"],
                "hub_cpu_ms_per_viewer": per(window.cpu["hub"], viewers, 1000),
                "redis_cpu_ms_per_viewer": per(window.cpu["redis"], viewers, 1000),
                "mismatches": report["mismatches"],
            }
            runs.append(figures)
            ctx.log(
                f"late #{index + 1}: full_text_p99_s={figures['full_text_p99_s']} "
                f"exact={figures['exact']}"
            )
    finally:
        await stack.stop()
    summary = summarize(runs)
    ctx.results[f"late-{viewers}"] = summary
    ctx.raw[f"late-{viewers}"] = runs
    return [summary]


async def idle(ctx: Context) -> list[dict[str, Any]]:
    """10,000 (quick: 2,000) viewers connected to queued jobs that never start: the
    gateway's memory per idle viewer (one run; memory does not need a median)."""
    viewers = 2000 if ctx.quick else 10_000
    hub_cores, other_cores = ctx.cores if ctx.cores else (None, None)
    stack = Stack(ctx.workdir / "idle", gateway_cores=hub_cores, other_cores=other_cores)
    pool = LoadPool.for_viewers(viewers, other_cores)
    try:
        await stack.start_redis()
        await stack.start_simulator(50, 10)
        await stack.start_gateway()
        assert stack.gateway
        async with aiohttp.ClientSession() as session:
            prompts = [jobs_mod.prompt(i, 10, 50) for i in range(10)]
            jobs = await jobs_mod.submit(session, stack.base_url, prompts)
        await pool.start()
        rss_before = rss_bytes(stack.gateway.pid)
        specs = [
            {
                "job": jobs[i % 10].id,
                "host": "127.0.0.1",
                "port": stack.gateway_port,
                "path": jobs[i % 10].events_path,
            }
            for i in range(viewers)
        ]
        opened = await pool.open(specs)
        await asyncio.sleep(1.0)
        rss_after = rss_bytes(stack.gateway.pid)
    finally:
        await pool.close()
        await stack.stop()
    figures = {
        "label": f"{viewers} idle viewers",
        "viewers": viewers,
        "connected": opened["statuses"].get("200", 0),
        "connect_s": opened["seconds"],
        "hub_rss_mb": rss_after / 2**20,
        "hub_rss_mb_before": rss_before / 2**20,
        "hub_kb_per_viewer": (rss_after - rss_before) / 1024 / viewers,
    }
    ctx.results[f"idle-{viewers}"] = figures
    ctx.log(f"idle: {figures}")
    return [figures]
