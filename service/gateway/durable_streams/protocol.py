"""The Durable Streams protocol's names (v1.0) and the parsing of its request
headers: content types, Stream-Closed, TTL and expiry, idempotent producers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from aiohttp import web
from multidict import CIMultiDictProxy

from service.gateway.durable_streams.errors import StreamError

STREAM_NEXT_OFFSET: Final = "Stream-Next-Offset"
STREAM_UP_TO_DATE: Final = "Stream-Up-To-Date"
STREAM_CURSOR: Final = "Stream-Cursor"
STREAM_CLOSED: Final = "Stream-Closed"
STREAM_TTL: Final = "Stream-TTL"
STREAM_EXPIRES_AT: Final = "Stream-Expires-At"
STREAM_SEQ: Final = "Stream-Seq"
STREAM_FORKED_FROM: Final = "Stream-Forked-From"
STREAM_FORK_OFFSET: Final = "Stream-Fork-Offset"
STREAM_FORK_SUB_OFFSET: Final = "Stream-Fork-Sub-Offset"
STREAM_SSE_DATA_ENCODING: Final = "Stream-SSE-Data-Encoding"
PRODUCER_ID: Final = "Producer-Id"
PRODUCER_EPOCH: Final = "Producer-Epoch"
PRODUCER_SEQ: Final = "Producer-Seq"
PRODUCER_EXPECTED_SEQ: Final = "Producer-Expected-Seq"
PRODUCER_RECEIVED_SEQ: Final = "Producer-Received-Seq"

DEFAULT_CONTENT_TYPE: Final = "application/octet-stream"
JSON: Final = "application/json"

_DECIMAL = re.compile(r"^(0|[1-9][0-9]*)$")
_DIGITS = re.compile(r"^[0-9]+$")
_MEDIA_TYPE = re.compile(r"^[\w.+-]+/[\w.+-]+")
MAX_SAFE_INTEGER: Final = 2**53 - 1  # producer epochs and sequences (JavaScript's limit)


def normalize_content_type(value: str | None) -> str:
    """The media type alone, lower case: ``Text/Plain; charset=utf-8`` is ``text/plain``."""
    return (value or "").split(";", 1)[0].strip().lower()


def is_json(content_type: str) -> bool:
    """Whether a stream is in JSON mode (message boundaries kept, reads are arrays)."""
    return normalize_content_type(content_type) == JSON


def is_text(content_type: str) -> bool:
    """Whether SSE carries the stream's data as text (else base64)."""
    media = normalize_content_type(content_type)
    return media.startswith("text/") or media == JSON


def closed_flag(headers: CIMultiDictProxy[str]) -> bool:
    """``Stream-Closed: true`` (any case); any other value is no header at all."""
    return headers.get(STREAM_CLOSED, "").strip().lower() == "true"


def creation_content_type(request: web.Request, *, fork: bool) -> str | None:
    """The content type a PUT asks for: a missing or malformed one is the default, or, for a
    fork, None (inherit the source's)."""
    value = request.headers.get("Content-Type", "").strip()
    if value and _MEDIA_TYPE.match(value):
        return value
    return None if fork else DEFAULT_CONTENT_TYPE


@dataclass(frozen=True, slots=True)
class Expiry:
    """A stream's expiry as asked: a sliding TTL, or an absolute time (at most one)."""

    ttl: int | None = None
    expires_at: str | None = None
    deadline_ms: int | None = None  # the absolute time, parsed


def parse_expiry(headers: CIMultiDictProxy[str]) -> Expiry:
    """``Stream-TTL`` (decimal seconds, no sign, no leading zero) or ``Stream-Expires-At``
    (RFC 3339); both at once is 400."""
    ttl_text = headers.get(STREAM_TTL)
    expires_text = headers.get(STREAM_EXPIRES_AT)
    if ttl_text is not None and expires_text is not None:
        raise StreamError(400, "both Stream-TTL and Stream-Expires-At given; send one")
    if ttl_text is not None:
        if not _DECIMAL.match(ttl_text) or len(ttl_text) > 12:
            raise StreamError(400, "Stream-TTL must be a whole number of seconds")
        return Expiry(ttl=int(ttl_text))
    if expires_text is not None:
        try:
            moment = datetime.fromisoformat(expires_text.strip().replace("z", "Z"))
        except ValueError:
            raise StreamError(400, "Stream-Expires-At must be an RFC 3339 timestamp") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return Expiry(expires_at=expires_text, deadline_ms=int(moment.timestamp() * 1000))
    return Expiry()


@dataclass(frozen=True, slots=True)
class Producer:
    """An idempotent producer's headers (protocol section 5.2.1), as decimal text."""

    id: str
    epoch: str
    seq: str


def parse_producer(headers: CIMultiDictProxy[str]) -> Producer | None:
    """The three producer headers together, or none of them."""
    values = [headers.get(name) for name in (PRODUCER_ID, PRODUCER_EPOCH, PRODUCER_SEQ)]
    if all(value is None for value in values):
        return None
    producer_id, epoch, seq = values
    if producer_id is None or epoch is None or seq is None:
        raise StreamError(400, "Producer-Id, Producer-Epoch and Producer-Seq go together")
    if not producer_id:
        raise StreamError(400, "Producer-Id must not be empty")
    for name, value in ((PRODUCER_EPOCH, epoch), (PRODUCER_SEQ, seq)):
        if not _DIGITS.match(value) or int(value) > MAX_SAFE_INTEGER:
            raise StreamError(400, f"{name} must be an integer from 0 to 2^53-1")
    return Producer(producer_id, str(int(epoch)), str(int(seq)))


def parse_sub_offset(headers: CIMultiDictProxy[str], *, fork: bool) -> int:
    """``Stream-Fork-Sub-Offset``: a non-negative decimal, only on a fork; 0 when absent."""
    value = headers.get(STREAM_FORK_SUB_OFFSET)
    if value is None:
        return 0
    if not fork:
        raise StreamError(400, "Stream-Fork-Sub-Offset needs Stream-Forked-From")
    if not _DECIMAL.match(value) or len(value) > 15:
        raise StreamError(400, "Stream-Fork-Sub-Offset must be a non-negative integer")
    return int(value)
