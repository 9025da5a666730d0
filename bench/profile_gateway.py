"""Where the gateway's time goes: py-spy on the gateway under scenario-1 load (or during a
reconnect storm), summarised as self and inclusive shares per function.

    .venv/bin/pip install py-spy
    .venv/bin/python -m bench.profile_gateway --viewers 1000 --seconds 6
    .venv/bin/python -m bench.profile_gateway --viewers 100 --rate 20   # 10 jobs x 10 viewers
    .venv/bin/python -m bench.profile_gateway --storm --viewers 2000
    .venv/bin/python -m bench.profile_gateway --late --viewers 1000   # joiners of a finished job

Not part of ``bench.run``: sampling costs the gateway a little CPU. py-spy does not see
inside uvloop (its time shows under ``Runner.run``).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import shutil
import sys
from pathlib import Path

import aiohttp

from bench import jobs as jobs_mod
from bench.pool import LoadPool
from bench.scenarios.live import viewer_specs
from bench.scenarios.storm import STORM_RATE, STORM_TOKENS, wait_half
from bench.stack import ROOT, Stack


def summarise(raw: Path, top: int = 25) -> str:
    """Self and inclusive sample shares per frame of a py-spy ``--format raw`` file."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        samples = int(count)
        total += samples
        frames = stack.split(";")
        own[frames[-1]] += samples
        for name in set(frames):
            inclusive[name] += samples
    if not total:
        return "no samples"
    lines = [f"{total} samples", "self:"]
    lines += [f"{100 * n / total:5.1f}% {name}" for name, n in own.most_common(top)]
    lines.append("inclusive:")
    lines += [f"{100 * n / total:5.1f}% {name}" for name, n in inclusive.most_common(top * 2)]
    return "\n".join(lines)


async def record(pid: int, seconds: float, out: Path) -> None:
    """py-spy for ``seconds`` on ``pid`` (non-blocking sampling, raw stacks)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    proc = await asyncio.create_subprocess_exec(
        spy,
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(int(seconds)),
        "--rate",
        "250",
        "--format",
        "raw",
        "--nonblocking",
        "-o",
        str(out),
    )
    await proc.wait()


async def profile(
    viewers: int, seconds: float, mode: str, out: Path, *, jobs: int = 10, rate: float = 100.0
) -> None:
    """Run the load, record the gateway, print the summary."""
    stack = Stack(out.parent / "profile-run", gateway_cores="1", other_cores="0")
    pool = LoadPool.for_viewers(viewers, "0")
    storm = mode == "storm"
    if mode != "fanout":
        tokens, rate = STORM_TOKENS, STORM_RATE
    else:
        tokens = int(rate * (seconds + 6))  # the job outlasts the recording
    try:
        await stack.start_redis()
        await stack.start_simulator(rate, tokens)
        await stack.start_gateway()
        assert stack.gateway is not None
        count = jobs if mode == "fanout" else 1
        async with aiohttp.ClientSession() as session:
            prompts = [jobs_mod.prompt(i, tokens, rate) for i in range(count)]
            submitted = await jobs_mod.submit(session, stack.base_url, prompts)
            if mode == "late":
                await stack.start_worker(first_job=submitted[0].id)
                await jobs_mod.wait_finished(session, stack.base_url, submitted, tokens / rate + 30)
        await pool.start()
        if mode == "late":
            spy = asyncio.create_task(record(stack.gateway.pid, seconds, out))
            await pool.open(viewer_specs(stack, submitted, viewers), concurrency=viewers)
            await spy
        elif storm:
            await pool.open(viewer_specs(stack, submitted, viewers))
            await stack.start_worker(first_job=submitted[0].id)
            text = "".join(jobs_mod.upstream_tokens(submitted[0].prompt))
            await wait_half(stack, submitted[0].id, len(text.encode()) // 2, 60)
            spy = asyncio.create_task(record(stack.gateway.pid, seconds, out))
            await pool.storm("tokenrelay")
            await spy
        else:
            await pool.open(viewer_specs(stack, submitted, viewers))
            await stack.start_worker(first_job=submitted[0].id)
            await asyncio.sleep(1.0)
            await record(stack.gateway.pid, seconds, out)
        await pool.wait(120)
    finally:
        await pool.close()
        await stack.stop()
    print(summarise(out))


def main() -> None:
    """Entry point of ``python -m bench.profile_gateway``."""
    parser = argparse.ArgumentParser(prog="python -m bench.profile_gateway", description=__doc__)
    parser.add_argument("--viewers", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--jobs", type=int, default=10, help="fan-out: live jobs (viewers spread)")
    parser.add_argument("--rate", type=float, default=100.0, help="fan-out: tokens/s per job")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--storm", action="store_true", help="profile a reconnect storm")
    mode.add_argument("--late", action="store_true", help="profile joiners of a finished job")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "gateway.raw")
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    kind = "storm" if args.storm else "late" if args.late else "fanout"
    asyncio.run(profile(args.viewers, args.seconds, kind, args.out, jobs=args.jobs, rate=args.rate))


if __name__ == "__main__":
    main()
