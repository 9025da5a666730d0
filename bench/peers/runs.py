"""Measurements of the peers with the same load generator, sizes and Redis as tokenrelay."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import aiohttp

from bench import jobs as jobs_mod
from bench.figures import latency_figures, process_figures, redis_figures, token_figures
from bench.peers.hubs import NchanHub, ResumableHub
from bench.peers.publish import Publisher
from bench.pool import LoadPool
from bench.procstat import CpuWindow, PeakRss, Timeline, rss_bytes
from bench.scenarios.live import SAMPLED_VIEWERS
from bench.scenarios.storm import STORM_RATE, STORM_TOKENS, storm_figures
from bench.stack import Stack

Cores = tuple[str, str] | None


def channel_texts(channels: int, tokens: int, rate: float) -> dict[str, list[str]]:
    """The same token lists tokenrelay's jobs stream (same prompts, same generator)."""
    return {
        f"ch{i}": jobs_mod.upstream_tokens(jobs_mod.prompt(i, tokens, rate))
        for i in range(channels)
    }


def peer_specs(
    port: int, paths: list[tuple[str, str]], viewers: int, *, marker: str | None, mark_all: bool
) -> list[dict[str, Any]]:
    """Viewers spread over ``(job, path)`` pairs."""
    every = 1 if mark_all else max(1, viewers // SAMPLED_VIEWERS)
    specs: list[dict[str, Any]] = []
    for i in range(viewers):
        job, path = paths[i % len(paths)]
        spec: dict[str, Any] = {
            "job": job,
            "host": "127.0.0.1",
            "port": port,
            "path": path,
            "mark": i % every == 0,
        }
        if marker:
            spec.update(marker=marker, terminal=["done"])
        specs.append(spec)
    return specs


async def run_nchan_fanout(
    channels: int, viewers: int, tokens: int, rate: float, workdir: Path, cores: Cores
) -> dict[str, Any]:
    """Scenario 1 against Nchan: the benchmark publishes each token as one message."""
    hub_cores, other_cores = cores if cores else (None, None)
    stack = Stack(workdir, gateway_cores=hub_cores, other_cores=other_cores)
    pool = LoadPool.for_viewers(viewers, other_cores)
    texts = channel_texts(channels, tokens, rate)
    try:
        await stack.start_redis()
        hub = NchanHub(stack)
        await hub.start()
        assert stack.redis_child
        worker = hub.worker_pid
        await pool.start()
        rss_idle = rss_bytes(worker)
        paths = [(name, f"/sub/{name}") for name in texts]
        opened = await pool.open(
            peer_specs(hub.port, paths, viewers, marker="event: done", mark_all=False)
        )
        await asyncio.sleep(0.5)
        rss_connected = rss_bytes(worker)
        window = CpuWindow(
            {
                "hub": [worker],
                "redis": [stack.redis_child.pid],
                "publisher": [os.getpid()],
                "loadgen": pool.pids,
            }
        )
        info_before = await stack.redis_info()
        peak = PeakRss(worker)
        peak.start()
        window.begin()
        async with aiohttp.ClientSession() as session:
            publisher = Publisher(session, f"http://127.0.0.1:{hub.port}")
            await publisher.run(texts, rate)
        waited = await pool.wait(60)
        window.end()
        info_after = await stack.redis_info()
        rss_peak = await peak.stop()
        expected = {name: "".join(toks) for name, toks in texts.items()}
        report = await pool.report({"mode": "peer", "expected": expected})
    finally:
        await pool.close()
        await stack.stop()
    figures: dict[str, Any] = {
        "label": f"Nchan: {channels} channels x {viewers} viewers",
        "jobs": channels,
        "viewers": viewers,
        "connected": opened["statuses"].get("200", 0),
        "done": waited["done"],
        "exact": report["exact"] / viewers,
        "cutoffs": report["cutoffs"],
        "mismatches": report["mismatches"],
        "upstream_late_s": max(publisher.lateness.values(), default=None),
        # One message per token: every token of its channel to each viewer that ended exact.
        "tokens_delivered": report["exact"] * tokens,
    }
    figures.update(latency_figures(report, "lat", "lat_stamp_ms"))
    figures.update(latency_figures(report, "e2e", "lat_stamp_ms"))
    figures.update(process_figures(report, window, rss_idle, rss_connected, rss_peak, viewers))
    figures.update(token_figures(figures))
    figures.update(redis_figures(info_before, info_after, channels * tokens))
    return figures


async def run_nchan_storm(viewers: int, workdir: Path, cores: Cores) -> dict[str, Any]:
    """Scenario 3 against Nchan: drop everyone halfway through a 4,000-message channel."""
    hub_cores, other_cores = cores if cores else (None, None)
    stack = Stack(workdir, gateway_cores=hub_cores, other_cores=other_cores)
    pool = LoadPool.for_viewers(viewers, other_cores)
    texts = channel_texts(1, STORM_TOKENS, STORM_RATE)
    try:
        await stack.start_redis()
        hub = NchanHub(stack)
        await hub.start()
        assert stack.redis_child
        await pool.start()
        paths = [(name, f"/sub/{name}") for name in texts]
        await pool.open(peer_specs(hub.port, paths, viewers, marker="event: done", mark_all=True))
        window = CpuWindow(
            {"hub": [hub.worker_pid], "redis": [stack.redis_child.pid], "loadgen": pool.pids}
        )
        window.begin()
        timeline = Timeline(window.pids)
        async with aiohttp.ClientSession() as session:
            publisher = Publisher(session, f"http://127.0.0.1:{hub.port}")
            publishing = asyncio.create_task(publisher.run(texts, STORM_RATE))
            while publisher.published.get("ch0", 0) < STORM_TOKENS // 2:
                if publishing.done():
                    publishing.result()
                    break
                await asyncio.sleep(0.01)
            timeline.start()
            storm = await pool.storm("peer")
            await publishing
        await pool.wait(60)
        await timeline.stop()
        window.end()
        expected = {name: "".join(toks) for name, toks in texts.items()}
        report = await pool.report({"mode": "peer", "expected": expected, "head": storm["head"]})
    finally:
        await pool.close()
        await stack.stop()
    return {
        "label": f"Nchan: {viewers} viewers, 4,000-message channel",
        **storm_figures(report, storm, window, viewers, timeline),
    }


async def run_resumable_fanout(
    viewers: int, tokens: int, rate: float, workdir: Path, cores: Cores
) -> dict[str, Any]:
    """One producer, ``viewers`` consumers that resume it (resumeExistingStream)."""
    hub_cores, other_cores = cores if cores else (None, None)
    stack = Stack(workdir, gateway_cores=hub_cores, other_cores=other_cores)
    pool = LoadPool.for_viewers(viewers, other_cores)
    texts = channel_texts(1, tokens, rate)
    try:
        await stack.start_redis()
        hub = ResumableHub(stack)
        await hub.start()
        assert stack.redis_child
        await pool.start()
        rss_idle = rss_bytes(hub.pid)
        window = CpuWindow(
            {"hub": [hub.pid], "redis": [stack.redis_child.pid], "loadgen": pool.pids}
        )
        info_before = await stack.redis_info()
        peak = PeakRss(hub.pid)
        peak.start()
        window.begin()
        async with aiohttp.ClientSession() as session:
            body = {"id": "s0", "tokens": texts["ch0"], "rate": rate, "start_in_ms": 1500}
            async with session.post(f"http://127.0.0.1:{hub.port}/produce", json=body) as resp:
                if resp.status != 202:
                    raise RuntimeError(f"resumable-stream /produce: HTTP {resp.status}")
        opened = await pool.open(
            peer_specs(hub.port, [("ch0", "/stream/s0")], viewers, marker=None, mark_all=False)
        )
        rss_connected = rss_bytes(hub.pid)
        waited = await pool.wait(tokens / rate * 3 + 60)
        window.end()
        info_after = await stack.redis_info()
        rss_peak = await peak.stop()
        report = await pool.report({"mode": "peer", "expected": {"ch0": "".join(texts["ch0"])}})
    finally:
        await pool.close()
        await stack.stop()
    figures: dict[str, Any] = {
        "label": f"resumable-stream: 1 stream x {viewers} viewers",
        "jobs": 1,
        "viewers": viewers,
        "connected": opened["statuses"].get("200", 0),
        "done": waited["done"],
        "exact": report["exact"] / viewers,
        "cutoffs": report["cutoffs"],
        "mismatches": report["mismatches"],
        # Every token of the stream to each viewer that ended exact, as for the others.
        "tokens_delivered": report["exact"] * tokens,
    }
    figures.update(latency_figures(report, "lat", "lat_stamp_ms"))
    figures.update(latency_figures(report, "e2e", "lat_stamp_ms"))
    figures.update(process_figures(report, window, rss_idle, rss_connected, rss_peak, viewers))
    figures.update(token_figures(figures))
    figures.update(redis_figures(info_before, info_after, tokens))
    return figures
