"""The orchestrator's side of the load generator: several ``bench.loadgen`` processes,
viewers spread over them, and their answers merged."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from typing import Any

import orjson

from bench.stack import ROOT, pinned

VIEWERS_PER_PROCESS = 2500
MAX_PROCESSES = 4


class LoadPool:
    """``processes`` load-generator children pinned to ``cores``."""

    def __init__(self, processes: int, cores: str | None) -> None:
        self.count = max(1, processes)
        self.cores = cores
        self.procs: list[asyncio.subprocess.Process] = []
        self._lock = asyncio.Lock()

    @classmethod
    def for_viewers(cls, viewers: int, cores: str | None) -> LoadPool:
        """A pool sized for ``viewers`` connections."""
        wanted = -(-viewers // VIEWERS_PER_PROCESS)
        return cls(min(MAX_PROCESSES, max(1, wanted)), cores)

    async def start(self) -> None:
        """Start the children."""
        for _ in range(self.count):
            proc = await asyncio.create_subprocess_exec(
                *pinned(self.cores, [sys.executable, "-m", "bench.loadgen"]),
                cwd=ROOT,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                limit=1 << 30,
            )
            self.procs.append(proc)

    @property
    def pids(self) -> list[int]:
        """Process ids of the children."""
        return [proc.pid for proc in self.procs]

    async def _ask(self, proc: asyncio.subprocess.Process, cmd: str, args: Any) -> Any:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(orjson.dumps({"cmd": cmd, "args": args}) + b"\n")
        await proc.stdin.drain()
        line = await proc.stdout.readline()
        if not line:
            raise RuntimeError(f"load generator {proc.pid} exited during {cmd!r}")
        reply = orjson.loads(line)
        if isinstance(reply, dict) and "error" in reply:
            raise RuntimeError(f"load generator {proc.pid}: {cmd}: {reply['error']}")
        return reply

    async def all(self, cmd: str, args: Any | Sequence[Any] | None = None) -> list[Any]:
        """Send ``cmd`` to every child (a list of ``args`` is one per child); their replies."""
        per_child = args if isinstance(args, list) else [args or {}] * len(self.procs)
        return list(
            await asyncio.gather(
                *(self._ask(p, cmd, a) for p, a in zip(self.procs, per_child, strict=True))
            )
        )

    async def open(self, specs: list[dict[str, Any]], concurrency: int = 200) -> dict[str, Any]:
        """Spread viewers round-robin over the children and open them all."""
        shares: list[list[dict[str, Any]]] = [[] for _ in self.procs]
        for index, spec in enumerate(specs):
            shares[index % len(shares)].append(spec)
        per = max(1, concurrency // len(self.procs))
        replies = await self.all(
            "open", [{"viewers": share, "concurrency": per} for share in shares]
        )
        statuses: dict[str, int] = {}
        errors: dict[str, int] = {}
        for reply in replies:
            for key, value in reply["statuses"].items():
                statuses[key] = statuses.get(key, 0) + value
            for key, value in reply["errors"].items():
                errors[key] = errors.get(key, 0) + value
        return {
            "opened": sum(r["opened"] for r in replies),
            "statuses": statuses,
            "errors": errors,
            "seconds": max(r["seconds"] for r in replies),
        }

    async def wait(self, seconds: float) -> dict[str, int]:
        """Wait until every viewer is done (or ``seconds`` pass)."""
        replies = await self.all("wait", {"timeout": seconds})
        return {"done": sum(r["done"] for r in replies), "total": sum(r["total"] for r in replies)}

    async def storm(self, mode: str) -> dict[str, Any]:
        """Drop every connection at once; each child reconnects its viewers immediately."""
        replies = await self.all("storm", {"mode": mode})
        heads = [tuple(r["head"]) for r in replies if r["head"] is not None]
        return {
            "t_drop": min(r["t_drop"] for r in replies),
            "head": list(max(heads)) if heads else None,
            "dropped": sum(r["dropped"] for r in replies),
        }

    async def report(self, args: dict[str, Any]) -> dict[str, Any]:
        """Every child's analysis, merged."""
        replies = await self.all("report", args)
        merged: dict[str, Any] = {"statuses": {}, "errors": {}, "mismatches": []}
        for reply in replies:
            for key, value in reply.items():
                if key in ("statuses", "errors"):
                    for k, v in value.items():
                        merged[key][k] = merged[key].get(k, 0) + v
                elif key == "first_stamp_ms":
                    if value is not None:
                        old = merged.get(key)
                        merged[key] = value if old is None else min(old, value)
                elif key in ("last_end", "analysis_s"):
                    merged[key] = max(merged.get(key, 0.0), value)
                elif isinstance(value, list):
                    merged.setdefault(key, []).extend(value)
                elif isinstance(value, int | float):
                    merged[key] = merged.get(key, 0) + value
        merged["mismatches"] = merged["mismatches"][:5]
        return merged

    async def close(self) -> None:
        """Close every connection and stop the children."""
        async with self._lock:
            procs, self.procs = self.procs, []
        for proc in procs:
            try:
                if proc.returncode is None and proc.stdin is not None:
                    proc.stdin.write(orjson.dumps({"cmd": "close", "args": {}}) + b"\n")
                    await proc.stdin.drain()
                    proc.stdin.close()
                await asyncio.wait_for(proc.wait(), 10)
            except (TimeoutError, ConnectionError):
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
