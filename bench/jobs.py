"""Jobs for the benchmark: prompts, submitting, outputs, and the upstream's token schedule."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

import aiohttp

from simulator.codegen import completion_tokens
from simulator.faults import parse_directives

TOPICS = (
    "binary search",
    "LRU cache",
    "HTTP router",
    "JSON parser",
    "priority queue",
    "rate limiter",
    "trie",
    "event bus",
    "matrix product",
    "CSV reader",
)


@dataclass(frozen=True, slots=True)
class Job:
    """A submitted job: its id, prompt and viewer URL."""

    id: str
    prompt: str
    events_path: str
    token: str


def prompt(index: int, tokens: int, rate: float) -> str:
    """A prompt whose ``#sim`` line sets the completion's length and pace."""
    topic = TOPICS[index % len(TOPICS)]
    return f"#sim tokens={tokens} rate={rate:g}\nWrite a {topic} in Python (bench job {index})."


def upstream_tokens(text: str) -> list[str]:
    """The tokens the simulated upstream streams for ``text`` (same code, same seed)."""
    directives, stripped = parse_directives(text)
    assert directives.tokens is not None
    return completion_tokens(
        stripped,
        count=directives.tokens,
        seed=directives.seed,
        unicode=directives.unicode,
        nul=directives.nul,
    )


async def submit(
    session: aiohttp.ClientSession, base: str, prompts: list[str], concurrency: int = 32
) -> list[Job]:
    """``POST /v1/jobs`` for each prompt; the jobs in the same order."""
    slots = asyncio.Semaphore(concurrency)
    # Raw output: the benchmark measures the relay, token for token like the peers' messages.
    # The default ("code") runs the code extractor, which holds a job's first lines until it
    # knows whether a fence opens (docs/protocol.md, X1-X8); its cost is bench/extractor.py's.
    fields = {"language": "python", "output": "raw"}

    async def one(text: str) -> Job:
        async with (
            slots,
            session.post(f"{base}/v1/jobs", json={"prompt": text, **fields}) as resp,
        ):
            body = await resp.json()
            if resp.status != 202:
                raise RuntimeError(f"submit failed: {resp.status} {body}")
            return Job(body["id"], text, body["events_url"], body["viewer_token"])

    return list(await asyncio.gather(*(one(p) for p in prompts)))


async def records(
    session: aiohttp.ClientSession, base: str, jobs: list[Job], concurrency: int = 32
) -> dict[str, dict[str, Any]]:
    """``GET /v1/jobs/{id}`` for each job: id -> record (with ``output``)."""
    slots = asyncio.Semaphore(concurrency)

    async def one(job: Job) -> tuple[str, dict[str, Any]]:
        async with (
            slots,
            session.get(f"{base}/v1/jobs/{job.id}", params={"token": job.token}) as resp,
        ):
            return job.id, await resp.json()

    return dict(await asyncio.gather(*(one(job) for job in jobs)))


async def wait_finished(
    session: aiohttp.ClientSession, base: str, jobs: list[Job], seconds: float
) -> dict[str, dict[str, Any]]:
    """Poll until every job is terminal (or ``seconds`` pass); the last records."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        found = await records(session, base, jobs)
        if all(r.get("status") in ("done", "failed", "cancelled") for r in found.values()):
            return found
        if loop.time() > deadline:
            return found
        await asyncio.sleep(0.2)


async def schedules(
    session: aiohttp.ClientSession, sim_url: str, jobs: list[Job], outputs: dict[str, str]
) -> tuple[dict[str, dict[str, Any]], dict[str, float]]:
    """When the upstream was due to write each token of each job.

    The simulator paces token ``i`` at ``start + (i + 1) / rate``; its request log gives
    ``start`` (``started_at``, taken as the request arrived, so the latencies derived from
    it are at most a few ms pessimistic). The token boundaries come from the simulator's own
    generator and are used only when they join to the job's output exactly. Also returns
    how late the simulator finished against its schedule (s), as a sign of its own load.
    """
    async with session.get(f"{sim_url}/_sim/requests") as resp:
        log = await resp.json()
    by_job = {r["headers"].get("x-tokenrelay-job"): r for r in log}
    out: dict[str, dict[str, Any]] = {}
    lateness: dict[str, float] = {}
    for job in jobs:
        record = by_job.get(job.id)
        if record is None:
            continue
        tokens = upstream_tokens(job.prompt)
        if "".join(tokens) != outputs.get(job.id):
            continue
        directives, _ = parse_directives(job.prompt)
        rate = float(directives.rate or 0)
        if rate <= 0:
            continue
        out[job.id] = {
            "t0": record["started_at"],
            "rate": rate,
            "cum": list(accumulate(len(t) for t in tokens)),
        }
        if record.get("ended_at"):
            lateness[job.id] = record["ended_at"] - (record["started_at"] + len(tokens) / rate)
    return out, lateness
