"""The job event stream's events as typed models, shared by the gateway's translators and the
Python client.

Each model is one event of ``GET /v1/jobs/{id}/events``: ``id`` is the Redis Stream entry id
(the resume point), the other fields are the event's JSON data. :func:`parse_event` builds one
from an SSE event or a stream entry; unknown fields are kept out, unknown kinds are refused.
"""

from __future__ import annotations

from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from service.contract.events import CANCELLED, DONE, FAILED, RESET, STATUS, TOKEN


class _Event(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str = Field(description="the stream entry id: resume after it with Last-Event-ID")


class StatusEvent(_Event):
    """``status``: the job is queued or running (attempt ``n``); a code-only job's attempt
    also says so when its code block names a language (``detected_language``)."""

    kind: Literal["status"] = STATUS
    status: str
    attempt: int = 0
    detected_language: str | None = None


class TokenEvent(_Event):
    """``token``: the next piece of output."""

    kind: Literal["token"] = TOKEN
    text: str


class ResetEvent(_Event):
    """``reset``: the generation restarts; discard the text so far."""

    kind: Literal["reset"] = RESET
    attempt: int = 0
    reason: str = ""


class DoneEvent(_Event):
    """``done``: finished (terminal)."""

    kind: Literal["done"] = DONE
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None


class FailedEvent(_Event):
    """``failed``: failed for good (terminal)."""

    kind: Literal["failed"] = FAILED
    code: str = "failed"
    message: str = ""


class CancelledEvent(_Event):
    """``cancelled``: cancelled (terminal)."""

    kind: Literal["cancelled"] = CANCELLED


JobEvent = StatusEvent | TokenEvent | ResetEvent | DoneEvent | FailedEvent | CancelledEvent
TerminalEvent = DoneEvent | FailedEvent | CancelledEvent

_MODELS: dict[str, type[JobEvent]] = {
    STATUS: StatusEvent,
    TOKEN: TokenEvent,
    RESET: ResetEvent,
    DONE: DoneEvent,
    FAILED: FailedEvent,
    CANCELLED: CancelledEvent,
}


def parse_event(event_id: str, kind: str, data: bytes | str) -> JobEvent:
    """The typed event for one entry or SSE event; ``ValueError`` for an unknown kind or bad
    data."""
    model = _MODELS.get(kind)
    if model is None:
        raise ValueError(f"unknown event kind {kind!r}")
    fields = orjson.loads(data) if data else {}
    if not isinstance(fields, dict):
        raise ValueError(f"the data of a {kind!r} event is not a JSON object")
    return model.model_validate({**fields, "id": event_id, "kind": kind})


def is_terminal(event: JobEvent) -> bool:
    """Whether ``event`` ends the job."""
    return isinstance(event, DoneEvent | FailedEvent | CancelledEvent)
