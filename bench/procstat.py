"""CPU seconds and memory of processes, and per-core busy time, read from ``/proc``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads) so far; 0 if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    # The command name may hold spaces: fields start after the last ')'.
    fields = raw[raw.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def rss_bytes(pid: int) -> int:
    """Resident set size of a process in bytes; 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def children(pid: int) -> list[int]:
    """Direct children of a process."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            text = (task / "children").read_text().split()
            found.extend(int(child) for child in text)
    return found


def core_times() -> dict[int, tuple[float, float]]:
    """Per core: (busy seconds, total seconds) since boot, from ``/proc/stat``."""
    out: dict[int, tuple[float, float]] = {}
    for line in Path("/proc/stat").read_text().splitlines():
        if not line.startswith("cpu") or line.startswith("cpu "):
            continue
        name, *values = line.split()
        ticks = [int(v) for v in values]
        idle = ticks[3] + ticks[4]  # idle + iowait
        total = sum(ticks[:8])
        out[int(name[3:])] = ((total - idle) / _TICKS, total / _TICKS)
    return out


@dataclass
class CpuWindow:
    """CPU seconds of named processes and busy share of each core between two snapshots."""

    pids: dict[str, list[int]]
    start_cpu: dict[str, float] = field(default_factory=dict)
    start_cores: dict[int, tuple[float, float]] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    core_busy: dict[int, float] = field(default_factory=dict)

    def _totals(self) -> dict[str, float]:
        return {name: sum(cpu_seconds(p) for p in pids) for name, pids in self.pids.items()}

    def begin(self) -> None:
        """Take the first snapshot."""
        self.start_cpu = self._totals()
        self.start_cores = core_times()

    def end(self) -> None:
        """Take the second snapshot and compute the deltas."""
        now = self._totals()
        self.cpu = {name: round(now[name] - self.start_cpu.get(name, 0.0), 3) for name in now}
        for core, (busy, total) in core_times().items():
            busy0, total0 = self.start_cores.get(core, (0.0, 0.0))
            span = total - total0
            self.core_busy[core] = round((busy - busy0) / span, 3) if span > 0 else 0.0


class PeakRss:
    """Samples a process's RSS (or the sum over several) in the background; keeps the
    highest value seen."""

    def __init__(self, pid: int | list[int], every: float = 0.25) -> None:
        self.pids = pid if isinstance(pid, list) else [pid]
        self.every = every
        self.peak = self._rss()
        self._task: asyncio.Task[None] | None = None

    def _rss(self) -> int:
        return sum(rss_bytes(pid) for pid in self.pids)

    async def _run(self) -> None:
        while True:
            self.peak = max(self.peak, self._rss())
            await asyncio.sleep(self.every)

    def start(self) -> None:
        """Begin sampling."""
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> int:
        """Stop sampling; the peak RSS in bytes."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.peak = max(self.peak, self._rss())
        return self.peak


class Timeline:
    """Per-core busy time and the CPU of named processes, sampled in the background every
    ``every`` seconds, so that a window known only afterwards (a storm's catch-up, from the
    drop to the last viewer caught up) can be read off: :meth:`window`."""

    def __init__(self, pids: dict[str, list[int]], every: float = 0.05) -> None:
        self.pids = pids
        self.every = every
        # (wall time, per-core (busy, total) seconds, CPU seconds per name)
        self.samples: list[tuple[float, dict[int, tuple[float, float]], dict[str, float]]] = []
        self._task: asyncio.Task[None] | None = None

    def _sample(self) -> None:
        cpu = {name: sum(cpu_seconds(p) for p in pids) for name, pids in self.pids.items()}
        self.samples.append((time.time(), core_times(), cpu))

    async def _run(self) -> None:
        while True:
            self._sample()
            await asyncio.sleep(self.every)

    def start(self) -> None:
        """Begin sampling."""
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop sampling (with a last sample)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._sample()

    def window(self, start: float, end: float) -> dict[str, float]:
        """Busy share of each core (``core<n>_busy``), and the CPU seconds of each named
        process (``<name>_cpu_s``) with the share of a core that is (``<name>_cpu_share``),
        between the samples around ``start`` and ``end`` (wall-clock times); empty without
        two such samples."""
        before = [s for s in self.samples if s[0] <= start]
        after = [s for s in self.samples if s[0] >= end]
        if not before or not after:
            return {}
        (t0, cores0, cpu0), (t1, cores1, cpu1) = before[-1], after[0]
        out: dict[str, float] = {}
        for core, (busy, total) in cores1.items():
            busy0, total0 = cores0.get(core, (busy, total))
            if total > total0:
                out[f"core{core}_busy"] = round((busy - busy0) / (total - total0), 3)
        for name, seconds in cpu1.items():
            used = seconds - cpu0.get(name, seconds)
            out[f"{name}_cpu_s"] = round(used, 3)
            out[f"{name}_cpu_share"] = round(used / (t1 - t0), 3)
        return out
