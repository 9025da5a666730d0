"""Where a gateway's memory per connected viewer goes: the gateway runs in this process (under
uvloop, as ``tokenrelay gateway`` does) on a private Redis, ``--viewers`` idle viewers connect
from load-generator children (``bench/loadgen.py``) to 10 queued jobs, and the growth is
broken down three ways: RSS per viewer, live objects per viewer by type (``gc``), and, with
``--trace``, Python allocations per viewer by source line (``tracemalloc``; its own bookkeeping
inflates RSS, so take RSS from a run without it).

    .venv/bin/python -m bench.memory_gateway --viewers 2000
    .venv/bin/python -m bench.memory_gateway --viewers 1000 --trace --top 30
    .venv/bin/python -m bench.memory_gateway --owners deque,dict   # who holds them

Not part of ``bench.run``; ``bench.run --scenario idle`` is the figure of record.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import os
import sys
import tempfile
import tracemalloc
from pathlib import Path

import aiohttp

from bench import jobs as jobs_mod
from bench.pool import LoadPool
from bench.procstat import rss_bytes
from bench.stack import ROOT, Stack
from service.cli.config import load_settings
from service.cli.embedded_redis import free_port
from service.contract.telemetry.log_setup import configure_logging
from service.gateway.main import serve_gateway

JOBS = 10


def tracked_ids() -> set[int]:
    """Ids of the objects the garbage collector tracks now."""
    gc.collect()
    return {id(o) for o in gc.get_objects()}


def new_objects(before: set[int]) -> dict[str, tuple[int, int]]:
    """Objects tracked now and not in ``before``, by type: (count, bytes by sys.getsizeof;
    a coroutine's size includes its frame, a dict's its table)."""
    gc.collect()
    found: dict[str, tuple[int, int]] = {}
    for obj in gc.get_objects():
        if id(obj) in before or obj is before:
            continue
        name = type(obj).__qualname__
        count, size = found.get(name, (0, 0))
        found[name] = (count + 1, size + sys.getsizeof(obj))
    return found


def print_owners(before: set[int], kinds: list[str]) -> None:
    """Who refers to new objects of these types (a sample of 300 each), by referrer type and
    attribute: to tell which deque or dict is whose."""
    for kind in kinds:
        sample = [
            o for o in gc.get_objects() if type(o).__qualname__ == kind and id(o) not in before
        ][:300]
        owners: collections.Counter[str] = collections.Counter()
        for obj in sample:
            for ref in gc.get_referrers(obj):
                if ref is sample:
                    continue
                where = type(ref).__qualname__
                if hasattr(ref, "__slots__") or hasattr(ref, "__dict__"):
                    for attr in dir(ref):
                        try:
                            if getattr(ref, attr) is obj:
                                where += "." + attr
                                break
                        except Exception:
                            continue
                if isinstance(ref, dict):
                    for key, value in ref.items():
                        if value is obj:
                            where += f"[{key!r}]"[:60]
                            break
                owners[where] += 1
        print(f"owners of new {kind} (of {len(sample)}):")
        for where, count in owners.most_common(12):
            print(f"  {count:5d} {where}")


def coroutine_names(before: set[int]) -> collections.Counter[str]:
    """New coroutines by their function's qualified name."""
    return collections.Counter(
        f"{o.cr_code.co_qualname} ({sys.getsizeof(o)} B)"
        for o in gc.get_objects()
        if type(o).__name__ == "coroutine" and id(o) not in before
    )


def print_traced(
    before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, viewers: int, top: int
) -> None:
    """Allocations grown between the snapshots, per viewer: by line, then by call chain."""
    filters = [tracemalloc.Filter(False, tracemalloc.__file__)]
    after = after.filter_traces(filters)
    before = before.filter_traces(filters)
    stats = after.compare_to(before, "lineno")
    grown = sum(s.size_diff for s in stats)
    print(f"traced Python heap: {grown / 1024 / viewers:.2f} KB/viewer")
    print("by line (bytes/viewer, blocks/viewer):")
    for stat in stats[:top]:
        frame = stat.traceback[0]
        print(
            f"  {stat.size_diff / viewers:8.0f} B {stat.count_diff / viewers:6.2f}"
            f"  {_short(frame.filename)}:{frame.lineno}"
        )
    print("by call chain (innermost last):")
    for stat in after.compare_to(before, "traceback")[: max(5, top // 2)]:
        print(f"  {stat.size_diff / viewers:8.0f} B {stat.count_diff / viewers:6.2f}")
        for frame in stat.traceback[-8:]:
            print(f"      {_short(frame.filename)}:{frame.lineno}")


def _short(filename: str) -> str:
    for marker in ("site-packages/", f"{ROOT}/", "/lib/python3"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


async def measure(viewers: int, trace: int, top: int, owners: list[str], workdir: Path) -> None:
    """Start everything, connect ``viewers`` idle viewers, print where the memory went
    (``trace``: tracemalloc with that many frames; 0: off)."""
    stack = Stack(workdir, gateway_cores=None, other_cores=None)
    pool = LoadPool.for_viewers(viewers, None)
    stop = asyncio.Event()
    server: asyncio.Task[None] | None = None
    try:
        await stack.start_redis()
        stack.gateway_port = free_port()
        for name in [name for name in os.environ if name.startswith("TOKENRELAY_")]:
            del os.environ[name]
        os.environ.update(
            TOKENRELAY_REDIS_URL=stack.redis_url,
            TOKENRELAY_PORT=str(stack.gateway_port),
            TOKENRELAY_LOG_LEVEL="WARNING",
            TOKENRELAY_VIEWER_TOKEN_SECRET="bench-secret-bench-secret-bench-secret",
            TOKENRELAY_SUBMIT_RATE_PER_MINUTE="0",
            TOKENRELAY_STREAM_RATE_PER_MINUTE="0",
            TOKENRELAY_MAX_STREAMS_PER_CLIENT="0",
        )
        settings = load_settings({})
        configure_logging(settings.log_level, process="gateway")
        listening = asyncio.Event()
        server = asyncio.create_task(serve_gateway(settings, stop, ready=listening.set))
        await listening.wait()
        async with aiohttp.ClientSession() as session:
            prompts = [jobs_mod.prompt(i, 10, 50) for i in range(JOBS)]
            jobs = await jobs_mod.submit(session, stack.base_url, prompts)
        await pool.start()
        specs = [
            {
                "job": jobs[i % JOBS].id,
                "host": "127.0.0.1",
                "port": stack.gateway_port,
                "path": jobs[i % JOBS].events_path,
            }
            for i in range(viewers)
        ]
        # One viewer first, so one-off costs (the feeds, lazily built caches) are not counted.
        await pool.open(specs[:JOBS])
        await asyncio.sleep(0.5)
        ids_before = tracked_ids()
        if trace:
            tracemalloc.start(trace)
            snap_before = tracemalloc.take_snapshot()
        rss_before = rss_bytes(os.getpid())
        opened = await pool.open(specs[JOBS:])
        await asyncio.sleep(1.0)
        gc.collect()
        rss_after = rss_bytes(os.getpid())
        counted = viewers - JOBS
        print(f"viewers connected: {opened['statuses']} errors: {opened['errors']}")
        print(
            f"RSS {rss_before / 2**20:.1f} -> {rss_after / 2**20:.1f} MB: "
            f"{(rss_after - rss_before) / 1024 / counted:.2f} KB/viewer"
        )
        if trace:
            snap_after = tracemalloc.take_snapshot()
            tracemalloc.stop()
            print_traced(snap_before, snap_after, counted, top)
        found = new_objects(ids_before)
        total = sum(size for _, size in found.values())
        print(
            f"gc-tracked objects per viewer: {sum(c for c, _ in found.values()) / counted:.1f}, "
            f"{total / counted:.0f} B (sys.getsizeof; + 16 B GC header each)"
        )
        for name, (count, size) in sorted(found.items(), key=lambda kv: -kv[1][1])[:top]:
            print(f"  {size / counted:7.0f} B {count / counted:6.2f}  {name}")
        if owners:
            print_owners(ids_before, owners)
        print("coroutines per viewer:")
        for name, count in coroutine_names(ids_before).most_common(top):
            print(f"  {count / counted:6.2f}  {name}")
    finally:
        await pool.close()
        stop.set()
        if server is not None:
            await server
        await stack.stop()


def main() -> None:
    """Entry point of ``python -m bench.memory_gateway``."""
    parser = argparse.ArgumentParser(prog="python -m bench.memory_gateway", description=__doc__)
    parser.add_argument("--viewers", type=int, default=2000)
    parser.add_argument("--trace", action="store_true", help="tracemalloc by source line")
    parser.add_argument("--frames", type=int, default=1, help="with --trace: frames kept")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--owners", default="", help="types whose referrers to list: deque,dict")
    args = parser.parse_args()
    import uvloop

    owners = [name for name in args.owners.split(",") if name]
    trace = args.frames if args.trace else 0
    with tempfile.TemporaryDirectory(prefix="memory-gateway-") as workdir:
        uvloop.run(measure(args.viewers, trace, args.top, owners, Path(workdir)))


if __name__ == "__main__":
    main()
