"""Durable Streams offsets: opaque to clients, to tokenrelay the Redis stream entry id of the
position's last entry, written ``<ms>_<seq>`` with both parts zero-padded to 16 digits so they
sort lexicographically (protocol section 8). ``0000000000000000_0000000000000000`` is the
start of every stream; ``-1`` (the start) and ``now`` (the tail) are the protocol's
sentinels."""

from __future__ import annotations

import re
from typing import Final

from service.contract.events import ZERO_ID, StreamId, parse_stream_id

START: Final = "-1"
NOW: Final = "now"
_OFFSET_RE = re.compile(r"^([0-9]{1,20})_([0-9]{1,20})$")
_U64 = 2**64


class BadOffset(ValueError):
    """Not an offset of this server."""


def format_offset(entry_id: StreamId) -> str:
    """The offset of the position after the entry ``entry_id``."""
    return f"{entry_id[0]:016d}_{entry_id[1]:016d}"


def parse_offset(text: str) -> StreamId:
    """The entry id an offset names; raises :class:`BadOffset` for anything else (the
    sentinels included: callers handle them first)."""
    match = _OFFSET_RE.match(text)
    if match is None:
        raise BadOffset(f"{text[:64]!r} is not an offset of this stream")
    ms, seq = int(match.group(1)), int(match.group(2))
    if ms >= _U64 or seq >= _U64:
        raise BadOffset(f"{text[:64]!r} is out of range")
    return ms, seq


def entry_id_text(entry_id: StreamId) -> str:
    """The Redis form of an entry id (``<ms>-<seq>``)."""
    return f"{entry_id[0]}-{entry_id[1]}"


def parse_entry_id(value: bytes | str) -> StreamId:
    """An entry id as Redis returns it."""
    text = value.decode() if isinstance(value, bytes) else value
    return parse_stream_id(text)


ZERO_OFFSET: Final = format_offset(ZERO_ID)
