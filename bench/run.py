"""``python -m bench.run``: tokenrelay's benchmark suite, with Nchan and resumable-stream
measured side by side. Prints tables; writes every figure (and every repeat) as JSON.

    python -m bench.run [--quick] [--scenario NAME ...] [--repeat N] [--out PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import shutil
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson

from bench.context import Context
from bench.loadgen import raise_fd_limit
from bench.report import render
from bench.scenarios.cluster import cluster
from bench.scenarios.fanout import fanout, generations
from bench.scenarios.grid import grid
from bench.scenarios.hostscale import hostscale
from bench.scenarios.late import idle, late
from bench.scenarios.peers import nchan, resumable
from bench.scenarios.storm import storm
from bench.stack import ROOT

Scenario = Callable[[Context], Awaitable[list[dict[str, Any]]]]

SCENARIOS: dict[str, Scenario] = {
    "fanout": fanout,
    "generations": generations,
    "storm": storm,
    "late": late,
    "idle": idle,
    "nchan": nchan,
    "resumable": resumable,
    "cluster": cluster,
    "hostscale": hostscale,
    "grid": grid,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, one repeat")
    parser.add_argument(
        "--scenario",
        action="append",
        choices=list(SCENARIOS),
        default=None,
        help="run only these (repeatable); default: all",
    )
    parser.add_argument("--repeat", type=int, default=None, help="runs per figure (median)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "latest.json")
    parser.add_argument(
        "--gateway-processes",
        type=int,
        default=2,
        help="hostscale: compare 1 gateway process with this many on one port (default 2)",
    )
    parser.add_argument(
        "--no-pin", action="store_true", help="do not pin the hub to core 1 and the rest to core 0"
    )
    return parser.parse_args(argv)


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
    }


async def main_async(args: argparse.Namespace) -> int:
    """Run the chosen scenarios; print the tables; write the JSON."""
    cores = None
    if not args.no_pin and (os.cpu_count() or 1) >= 2 and shutil.which("taskset"):
        cores = ("1", "0")
        # The orchestrator (and the Nchan publisher inside it) stays off the hub's core.
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {0})
    stamp = time.strftime("%Y%m%d-%H%M%S")
    # Absolute: nginx resolves its -c and -p paths against its own prefix, not our cwd.
    workdir = args.out.resolve().parent / f"run-{stamp}"
    workdir.mkdir(parents=True, exist_ok=True)
    repeat = args.repeat or (1 if args.quick else 3)
    ctx = Context(
        quick=args.quick,
        repeat=repeat,
        workdir=workdir,
        cores=cores,
        gateway_processes=args.gateway_processes,
    )
    names = args.scenario or list(SCENARIOS)
    ctx.log(f"scenarios {names}, repeat {repeat}, quick={args.quick}, logs in {workdir}")
    sections: dict[str, list[dict[str, Any]]] = {}
    started = time.monotonic()
    failures: dict[str, str] = {}
    for name in names:
        ctx.log(f"scenario {name}")
        try:
            sections[name] = await SCENARIOS[name](ctx)
        except Exception as exc:  # one broken scenario must not lose the others' figures
            failures[name] = f"{type(exc).__name__}: {exc}"
            ctx.log(f"scenario {name} failed: {failures[name]}")
    try:
        text = render(sections)
    except Exception as exc:  # the JSON below still keeps every figure
        text = f"(table failed: {type(exc).__name__}: {exc})"
    print(text)
    if failures:
        print("failed scenarios: " + "; ".join(f"{k}: {v}" for k, v in failures.items()))
    document = {
        "machine": machine(),
        "options": {
            "quick": args.quick,
            "repeat": repeat,
            "scenarios": names,
            "pinned": cores is not None,
            "gateway_processes": args.gateway_processes,
        },
        "seconds": time.monotonic() - started,
        "scenarios": sections,
        "failures": failures,
        "runs": ctx.raw,
        "table": text,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    ctx.log(f"wrote {args.out} in {document['seconds']:.0f} s")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    raise_fd_limit()
    sys.exit(asyncio.run(main_async(parse_args(argv))))


if __name__ == "__main__":
    main()
