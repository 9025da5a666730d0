"""A live tokenrelay measurement: jobs generating while viewers watch them.

Shared by the fan-out scenario (few jobs, many viewers), the many-generations scenario (many
jobs, one viewer each, also on a local Redis Cluster) and the resumable-stream comparison
(one job, 100 viewers).

Order of events, so that only the generation is measured: Redis, simulator and gateway start;
jobs are submitted and every viewer connects (each sees ``queued``); the worker starts; CPU
counters are read as soon as the first job runs; the window ends when every viewer has its
terminal event.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from redis.crc import key_slot

from bench import jobs as jobs_mod
from bench.figures import (
    cluster_figures,
    latency_figures,
    process_figures,
    redis_figures,
    token_figures,
)
from bench.pool import LoadPool
from bench.procstat import CpuWindow, PeakRss, rss_bytes
from bench.stack import Stack
from service.contract.keys import LANES, PREFIX, lane_tag

SAMPLED_VIEWERS = 500


@dataclass(frozen=True)
class LiveSpec:
    """What to run."""

    jobs: int
    viewers: int
    tokens: int
    rate: float
    label: str
    # `tokenrelay gateway --processes N` (the hub's CPU and memory: all N processes).
    gateway_processes: int = 1


def viewer_specs(stack: Stack, jobs: list[jobs_mod.Job], viewers: int) -> list[dict[str, Any]]:
    """Viewers spread round-robin over ``jobs``; every n-th one records receive times."""
    every = max(1, viewers // SAMPLED_VIEWERS)
    return [
        {
            "job": jobs[i % len(jobs)].id,
            "host": "127.0.0.1",
            "port": stack.gateway_port,
            "path": jobs[i % len(jobs)].events_path,
            "mark": i % every == 0,
            "terminal": ["done", "failed", "cancelled"],
        }
        for i in range(viewers)
    ]


async def run_live(
    spec: LiveSpec, workdir: Path, cores: tuple[str, str] | None, *, primaries: int = 0
) -> dict[str, Any]:
    """One measurement; the figures of this run. ``primaries`` > 0: on a local Redis Cluster
    of that many primaries (one replica each), with per-primary figures and key spread."""
    hub_cores, other_cores = cores if cores else (None, None)
    stack = Stack(
        workdir,
        gateway_cores=hub_cores,
        other_cores=other_cores,
        primaries=primaries,
        gateway_processes=spec.gateway_processes,
    )
    pool = LoadPool.for_viewers(spec.viewers, other_cores)
    try:
        await stack.start_redis()
        await stack.start_simulator(spec.rate, spec.tokens)
        await stack.start_gateway()
        assert stack.gateway and stack.simulator
        async with aiohttp.ClientSession() as session:
            prompts = [jobs_mod.prompt(i, spec.tokens, spec.rate) for i in range(spec.jobs)]
            # On a cluster the first job goes alone: a burst of concurrent first requests to a
            # gateway just started on a 3-primary cluster fails some submits with 500
            # (``'NoneType' object has no attribute 'writelines'`` inside redis-py's
            # RedisCluster); once one command went through, concurrent ones do not.
            alone = 1 if primaries else 0
            jobs = await jobs_mod.submit(session, stack.base_url, prompts[:alone], 1)
            jobs += await jobs_mod.submit(session, stack.base_url, prompts[alone:])
            await pool.start()
            hub_pids = stack.hub_pids()
            rss_idle = sum(rss_bytes(pid) for pid in hub_pids)
            opened = await pool.open(viewer_specs(stack, jobs, spec.viewers))
            await asyncio.sleep(0.5)
            rss_connected = sum(rss_bytes(pid) for pid in hub_pids)
            await stack.start_worker(first_job=jobs[0].id)
            assert stack.worker
            window = CpuWindow(
                {
                    "hub": hub_pids,
                    "worker": [stack.worker.pid],
                    "redis": stack.redis_pids(),
                    "upstream": [stack.simulator.pid],
                    "loadgen": pool.pids,
                }
            )
            streams: dict[int, int] = {}
            nodes_before = await stack.node_infos()
            info_before = await stack.redis_info()
            peak = PeakRss(hub_pids)
            peak.start()
            window.begin()
            began = time.monotonic()
            waited = await pool.wait(spec.tokens / spec.rate * 3 + 60)
            window.end()
            redis_window_s = time.monotonic() - began
            info_after = await stack.redis_info()
            nodes_after = await stack.node_infos()
            if primaries:
                streams = await stack.keys_per_primary(f"{PREFIX}:*:events:*")
            rss_peak = await peak.stop()
            found = await jobs_mod.records(session, stack.base_url, jobs)
            outputs = {job_id: rec.get("output", "") for job_id, rec in found.items()}
            sched, lateness = await jobs_mod.schedules(session, stack.sim_url, jobs, outputs)
        report = await pool.report({"mode": "tokenrelay", "expected": outputs, "schedules": sched})
    finally:
        await pool.close()
        await stack.stop()
    tokens_total = spec.jobs * spec.tokens
    exact_viewers = report["exact"]
    figures: dict[str, Any] = {
        "label": spec.label,
        "jobs": spec.jobs,
        "viewers": spec.viewers,
        "gateway_processes": spec.gateway_processes,
        # Upstream tokens delivered: every token of its job to each viewer that ended exact
        # (events are fewer: tokens are merged into events).
        "tokens_delivered": exact_viewers * spec.tokens,
        "tokens_per_job": spec.tokens,
        "rate": spec.rate,
        "connected": opened["statuses"].get("200", 0),
        "done": waited["done"],
        "exact": report["exact"] / spec.viewers,
        "cutoffs": report["cutoffs"],
        "mismatches": report["mismatches"],
        "upstream_late_s": max(lateness.values(), default=None),
        "schedules": len(sched),
        # How far apart the jobs' upstream requests started (the worker's start-up spread).
        "start_spread_s": (max(starts) - min(starts))
        if (starts := [s["t0"] for s in sched.values()])
        else None,
    }
    figures.update(latency_figures(report, "lat", "lat_stamp_ms"))
    figures.update(latency_figures(report, "e2e", "lat_upstream_ms"))
    figures.update(process_figures(report, window, rss_idle, rss_connected, rss_peak, spec.viewers))
    figures.update(token_figures(figures))
    figures.update(redis_figures(info_before, info_after, tokens_total))
    figures["worker_cpu_per_1k_tokens"] = window.cpu["worker"] * 1000 / tokens_total
    if primaries:
        lanes: dict[int, int] = {}
        for lane in range(LANES):
            port = stack.primary_of_slot(key_slot(lane_tag(lane).encode()))
            lanes[port] = lanes.get(port, 0) + 1
        figures.update(
            cluster_figures(
                nodes_before,
                nodes_after,
                stack.primary_ports,
                redis_window_s,
                tokens_total,
                streams,
                lanes,
            )
        )
    return figures
