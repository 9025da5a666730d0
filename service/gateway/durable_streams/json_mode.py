"""JSON mode (protocol section 9.1): an append of a JSON array is its elements, one level
flattened; each element is stored as compact JSON; a read is one array of every message in
the range. A stored entry holds one append's messages joined by commas."""

from __future__ import annotations

import json
from typing import Any

from service.gateway.durable_streams.errors import StreamError


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def messages(body: bytes, *, creating: bool) -> list[str]:
    """An append's (or a PUT's initial) messages as compact JSON texts; an empty array is
    allowed only when creating; invalid JSON is 400."""
    try:
        value = json.loads(body.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError):
        raise StreamError(400, "the body is not valid JSON") from None
    items = value if isinstance(value, list) else [value]
    if not items and not creating:
        raise StreamError(400, "an empty JSON array appends nothing")
    return [json.dumps(item, ensure_ascii=False, separators=(",", ":")) for item in items]


def entry(texts: list[str]) -> bytes:
    """The stored form of one append's messages."""
    return ",".join(texts).encode("utf-8")


def split_entry(data: bytes) -> list[str]:
    """One stored entry's messages again."""
    values = json.loads(b"[" + data + b"]")
    return [json.dumps(item, ensure_ascii=False, separators=(",", ":")) for item in values]


def array(entries: list[bytes]) -> bytes:
    """The read body: every message of the entries as one JSON array."""
    return b"[" + b",".join(entries) + b"]"
