"""What every scenario gets: mode, repeats, where to put logs, core pinning, and the
measurements already taken in this run (so a peer comparison reuses tokenrelay's)."""

from __future__ import annotations

import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.stats import median

Run = Callable[[Path], Awaitable[dict[str, Any]]]


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of every numeric figure over the runs; other values from the first run."""
    out: dict[str, Any] = {}
    for key in runs[0]:
        values = [run.get(key) for run in runs]
        numeric = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
        if numeric and len(numeric) == len([v for v in values if v is not None]):
            out[key] = median(numeric)
        elif key == "mismatches":
            out[key] = [m for run in runs for m in run.get(key) or []][:5]
        else:
            out[key] = values[0]
    out["repeats"] = len(runs)
    return out


@dataclass
class Context:
    """Options of this benchmark run and its results so far."""

    quick: bool
    repeat: int
    workdir: Path
    cores: tuple[str, str] | None
    # The N of the hostscale scenario (`tokenrelay gateway --processes N`).
    gateway_processes: int = 2
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    raw: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def log(self, message: str) -> None:
        """Progress on stderr (the table goes to stdout)."""
        print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    async def measure(self, name: str, run: Run, repeat: int | None = None) -> dict[str, Any]:
        """Run ``run`` ``repeat`` times (fresh processes each time); the medians. A name
        measured before in this benchmark run is not measured again."""
        return (await self.measure_together({name: run}, repeat))[0]

    async def measure_together(
        self, runs: dict[str, Run], repeat: int | None = None
    ) -> list[dict[str, Any]]:
        """Like :meth:`measure` for several configurations, taken in turn (A B A B ...), so
        that a slow spell of a shared machine falls on each of them alike; the medians of
        each, in the order given."""
        todo = {name: run for name, run in runs.items() if name not in self.results}
        collected: dict[str, list[dict[str, Any]]] = {name: [] for name in todo}
        for index in range(repeat or self.repeat):
            for name, run in todo.items():
                started = time.monotonic()
                figures = await run(self.workdir / f"{name}-{index}")
                figures["wall_s"] = time.monotonic() - started
                collected[name].append(figures)
                self.log(f"{name} #{index + 1}: {brief(figures)}")
        for name, measured in collected.items():
            self.results[name] = summarize(measured)
            self.raw[name] = measured
        return [self.results[name] for name in runs]


def brief(figures: dict[str, Any]) -> str:
    """A one-line progress summary of a run."""
    keys = (
        "events_per_s",
        "redis_tokens_per_s",
        "chars_per_hub_cpu_s",
        "tokens_per_s",
        "tokens_per_hub_cpu_s",
        "lat_p99_ms",
        "e2e_p99_ms",
        "primaries_cpu_s",
        "catchup_p99_s",
        "full_text_p99_s",
        "exact",
        "hub_kb_per_viewer",
        "wall_s",
    )
    parts = []
    for key in keys:
        value = figures.get(key)
        if isinstance(value, float):
            parts.append(f"{key}={value:.4g}")
        elif value is not None:
            parts.append(f"{key}={value}")
    return " ".join(parts)
