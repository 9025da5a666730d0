"""Plain-text tables for people, JSON for scripts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

EMPTY = "-"


def cell(value: Any) -> str:
    """How one value reads in a table."""
    if value is None or value == "":
        return EMPTY
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def table(columns: Sequence[tuple[str, str]], rows: Sequence[dict[str, Any]]) -> str:
    """Left-aligned columns ``(header, key)``, numbers right-aligned, two spaces apart."""
    cells = [[cell(row.get(key)) for _, key in columns] for row in rows]
    numeric = [
        all(isinstance(row.get(key), int | float) for row in rows if row.get(key) is not None)
        for _, key in columns
    ]
    widths = [
        max([len(header), *(len(line[i]) for line in cells)])
        for i, (header, _) in enumerate(columns)
    ]
    lines = []
    for line in [[header for header, _ in columns], *cells]:
        parts = [
            text.rjust(width) if is_number else text.ljust(width)
            for text, width, is_number in zip(line, widths, numeric, strict=True)
        ]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def key_values(pairs: Sequence[tuple[str, Any]]) -> str:
    """Two columns: a name and its value."""
    width = max((len(name) for name, _ in pairs), default=0)
    return "\n".join(f"{name.ljust(width)}  {cell(value)}" for name, value in pairs)


def as_json(value: Any) -> str:
    """Indented JSON with sorted keys, for scripts and ``jq``."""
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
