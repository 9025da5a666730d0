"""The record of every completion request, served at ``GET /_sim/requests``."""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from simulator.faults import FaultKind

# The only request headers the log keeps: how tokenrelay tags its upstream calls.
LOGGED_HEADERS = ("x-tokenrelay-job", "x-tokenrelay-attempt")


class Status(StrEnum):
    """Where a request stands; every status but STREAMING is final."""

    STREAMING = "streaming"
    COMPLETED = "completed"
    FAILED = "failed"
    CLIENT_DISCONNECTED = "client_disconnected"


@dataclass
class RequestRecord:
    """One completion request and exactly what it sent."""

    seq: int
    headers: dict[str, str]
    request_id: str = ""
    model: str = ""
    prompt: str = ""
    fault: FaultKind = FaultKind.NONE
    status: Status = Status.STREAMING
    http_status: int | None = None
    finish_reason: str | None = None
    error: str | None = None
    chunks_sent: int = 0
    started_at: float = field(default_factory=time.time)
    ended_at: float | None = None
    _pieces: list[str] = field(default_factory=list)

    def sent(self, text: str) -> None:
        """Note a content chunk the client has been sent."""
        self._pieces.append(text)
        self.chunks_sent += 1

    def finish(
        self,
        status: Status,
        *,
        http_status: int | None = None,
        finish_reason: str | None = None,
        error: str | None = None,
    ) -> None:
        """Settle the request; the first final status wins."""
        if self.status is not Status.STREAMING:
            return
        self.status = status
        self.http_status = http_status or self.http_status
        self.finish_reason = finish_reason
        self.error = error
        self.ended_at = time.time()

    @property
    def text(self) -> str:
        """The content sent so far."""
        return "".join(self._pieces)

    def to_json(self) -> dict[str, object]:
        """The record as ``GET /_sim/requests`` shows it."""
        return {
            "seq": self.seq,
            "request_id": self.request_id,
            "model": self.model,
            "prompt": self.prompt,
            "headers": self.headers,
            "fault": self.fault.value,
            "status": self.status.value,
            "http_status": self.http_status,
            "finish_reason": self.finish_reason,
            "error": self.error,
            "text": self.text,
            "chunks_sent": self.chunks_sent,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
        }


class RequestLog:
    """The last ``limit`` completion requests, oldest first."""

    def __init__(self, limit: int) -> None:
        self._records: deque[RequestRecord] = deque(maxlen=limit)
        self._seq = itertools.count(1)

    def open(self, headers: Mapping[str, str]) -> RequestRecord:
        """Start the record of a request that has just arrived."""
        kept = {name: headers[name] for name in LOGGED_HEADERS if name in headers}
        record = RequestRecord(seq=next(self._seq), headers=kept)
        self._records.append(record)
        return record

    def records(self, job: str | None = None) -> list[RequestRecord]:
        """Every kept record, or those whose ``x-tokenrelay-job`` header is ``job``."""
        return [r for r in self._records if job is None or r.headers.get(LOGGED_HEADERS[0]) == job]

    def clear(self) -> int:
        """Forget every record; returns how many there were. Sequence numbers keep rising."""
        count = len(self._records)
        self._records.clear()
        return count
