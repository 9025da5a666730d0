"""A read's query: ``offset`` (``-1`` the start, ``now`` the tail, or an offset), ``live``
(``long-poll`` or ``sse``; anything else is a catch-up read) and ``cursor``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from aiohttp import web

from service.contract.events import ZERO_ID, StreamId
from service.gateway.durable_streams.errors import StreamError
from service.gateway.durable_streams.offsets import NOW, START, BadOffset, parse_offset

LONG_POLL: Final = "long-poll"
SSE: Final = "sse"


@dataclass(frozen=True, slots=True)
class ReadParams:
    """What a GET asks for. ``after`` is the entry id to read after (``ZERO_ID`` for the
    start, None for ``now``); ``start`` the offset as asked, for the ETag."""

    after: StreamId | None
    start: str
    live: str | None
    cursor: str | None

    @property
    def from_start(self) -> bool:
        """Whether the read starts at the stream's (earliest retained) beginning."""
        return self.start == START


def read_params(request: web.Request) -> ReadParams:
    """Parse and check a read's query: 400 for an empty, repeated or malformed offset, and
    for a live read without one."""
    offsets = request.query.getall("offset", [])
    live = request.query.get("live")
    if live not in (LONG_POLL, SSE):
        live = None
    if len(offsets) > 1:
        raise StreamError(400, "give one offset")
    if not offsets:
        if live is not None:
            raise StreamError(400, f"a {live} read needs an offset (-1 for the start)")
        return ReadParams(ZERO_ID, START, None, None)
    offset = offsets[0]
    if offset == NOW:
        after = None
    elif offset == START:
        after = ZERO_ID
    else:
        try:
            after = parse_offset(offset)
        except BadOffset as exc:
            raise StreamError(400, str(exc)) from None
    return ReadParams(after, offset, live, request.query.get("cursor"))
