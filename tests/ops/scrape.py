"""Reading a real ``/metrics`` answer with ``prometheus_client.parser``."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class Scrape:
    """One exposition: every sample, and the family names and types it declares."""

    samples: list[tuple[str, dict[str, str], float]]
    families: dict[str, str]  # family name -> type

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples called ``name`` whose labels include ``labels``."""
        return sum(
            value
            for sample, sample_labels, value in self.samples
            if sample == name and labels.items() <= sample_labels.items()
        )

    def labels_of(self, name: str) -> list[dict[str, str]]:
        """The label sets of the samples called ``name``."""
        return [labels for sample, labels, _ in self.samples if sample == name]

    def series_names(self) -> set[str]:
        """Every series name a query could use: samples, plus the series each declared
        family has even before its first observation."""
        names = {sample for sample, _, _ in self.samples}
        suffixes = {
            "counter": ("_total",),
            "histogram": ("_bucket", "_count", "_sum"),
            "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
            "summary": ("_count", "_sum"),
        }
        for family, kind in self.families.items():
            names.add(family)
            names.update(family + suffix for suffix in suffixes.get(kind, ()))
        return names


def parse(text: str) -> Scrape:
    """Parse the text exposition format."""
    samples: list[tuple[str, dict[str, str], float]] = []
    families: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        families[family.name] = family.type
        samples.extend((s.name, dict(s.labels), s.value) for s in family.samples)
    return Scrape(samples, families)


async def scrape(session: aiohttp.ClientSession, url: str) -> Scrape:
    """GET ``url`` (a ``/metrics`` endpoint) and parse it."""
    async with session.get(url) as response:
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return parse(await response.text())
