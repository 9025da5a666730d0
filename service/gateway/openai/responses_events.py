"""A job's events as Responses API streaming events, numbered so that any reader on any
gateway can resume after any ``sequence_number``.

The mapping is a fold over the job's stream entries from the first one: the events, and so
their numbers 0, 1, 2, ..., depend only on the entries in order (one ``output_text.delta``
per ``token`` entry, never on how reads merged them). Resuming after ``N`` replays the fold
and sends the events numbered above ``N``. The entries of a job are append-only, so the
numbering never changes.

=================  ============================================================================
job entry          Responses events
=================  ============================================================================
first entry        ``response.created`` (status ``queued``)
``status`` running ``response.in_progress`` (the first time only)
``token``          ``response.output_item.added`` + ``response.content_part.added`` when no
                   message is open (the item of attempt ``n`` is ``msg_<job>_<n>``), then
                   ``response.output_text.delta``
``reset``          the open message ends: ``response.output_text.done``,
                   ``response.content_part.done``, ``response.output_item.done`` with the item's
                   ``status: "incomplete"``. Its text is withdrawn: the next attempt's text
                   comes in a new item (next ``output_index``), and the final response lists
                   only that one.
``done``           the message ends ``completed``, then ``response.completed`` (or
                   ``response.incomplete`` when the token limit cut it)
``failed``         the message ends ``incomplete``, then ``response.failed``
``cancelled``      the message ends ``incomplete``, then ``response.cancelled``
=================  ============================================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from service.contract.event_data import DoneEvent, FailedEvent, StatusEvent, parse_event
from service.contract.events import (
    CANCELLED,
    DONE,
    FAILED,
    RESET,
    RUNNING,
    STATUS,
    TOKEN,
    format_stream_id,
)
from service.gateway.fanout.frames import Entry
from service.gateway.openai.response_object import (
    ResponseHead,
    failure_object,
    final_status,
    item_id,
    message_item,
    response_object,
    text_part,
)

Event = dict[str, Any]


@dataclass(slots=True)
class _OpenItem:
    id: str
    output_index: int
    parts: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.parts)


class ResponsesTranslator:
    """Folds a job's entries, from its first, into numbered Responses events."""

    def __init__(self, head: ResponseHead) -> None:
        self._head = head
        self.next_sequence = 0
        self.finished = False
        self._created = False
        self._in_progress = False
        self._attempt = 0
        self._items = 0
        self._open: _OpenItem | None = None

    def translate(self, entry: Entry) -> list[Event]:
        """The events for the next entry, each with its ``sequence_number``."""
        events: list[Event] = []
        if not self._created:
            self._created = True
            events.append(self._lifecycle("response.created", "queued"))
        if entry.kind == TOKEN:
            events.extend(self._token(entry.text))
        elif entry.kind == STATUS:
            events.extend(self._status(entry))
        elif entry.kind == RESET:
            events.extend(self._close("incomplete"))
        elif entry.kind in (DONE, FAILED, CANCELLED):
            events.extend(self._terminal(entry))
        for event in events:
            event["sequence_number"] = self.next_sequence
            self.next_sequence += 1
        return events

    def _status(self, entry: Entry) -> list[Event]:
        status = parse_event(format_stream_id(entry.id), entry.kind, entry.data)
        assert isinstance(status, StatusEvent)
        if status.status != RUNNING:
            return []
        self._attempt = status.attempt
        if self._in_progress:
            return []
        self._in_progress = True
        return [self._lifecycle("response.in_progress", "in_progress")]

    def _token(self, text: str) -> list[Event]:
        events: list[Event] = []
        item = self._open
        if item is None:
            item = self._open = _OpenItem(item_id(self._head.job_id, self._attempt), self._items)
            self._items += 1
            events.append(
                {
                    "type": "response.output_item.added",
                    "output_index": item.output_index,
                    "item": message_item(item.id, None, "in_progress"),
                }
            )
            events.append(
                {
                    "type": "response.content_part.added",
                    **self._where(item),
                    "part": text_part(""),
                }
            )
        item.parts.append(text)
        events.append(
            {
                "type": "response.output_text.delta",
                **self._where(item),
                "delta": text,
                "logprobs": [],
            }
        )
        return events

    def _close(self, status: str) -> list[Event]:
        """End the open message (``completed`` or ``incomplete``)."""
        item = self._open
        if item is None:
            return []
        self._open = None
        text = item.text
        return [
            {
                "type": "response.output_text.done",
                **self._where(item),
                "text": text,
                "logprobs": [],
            },
            {"type": "response.content_part.done", **self._where(item), "part": text_part(text)},
            {
                "type": "response.output_item.done",
                "output_index": item.output_index,
                "item": message_item(item.id, text, status),
            },
        ]

    def _terminal(self, entry: Entry) -> list[Event]:
        self.finished = True
        event = parse_event(format_stream_id(entry.id), entry.kind, entry.data)
        item = self._open
        text = item.text if item is not None else None
        if isinstance(event, DoneEvent):
            status = final_status(event.finish_reason)
            item_status = "completed" if status == "completed" else "incomplete"
            kind = f"response.{status}"
        else:
            status = "failed" if isinstance(event, FailedEvent) else "cancelled"
            item_status = "incomplete"
            kind = f"response.{status}"
        events = self._close(item_status)
        output = [] if item is None or text is None else [message_item(item.id, text, item_status)]
        snapshot = response_object(
            self._head,
            status,
            output,
            usage=event.usage if isinstance(event, DoneEvent) else None,
            error=failure_object(event.code, event.message)
            if isinstance(event, FailedEvent)
            else None,
        )
        events.append({"type": kind, "response": snapshot})
        return events

    def _lifecycle(self, kind: str, status: str) -> Event:
        return {"type": kind, "response": response_object(self._head, status, [])}

    @staticmethod
    def _where(item: _OpenItem) -> Event:
        return {"item_id": item.id, "output_index": item.output_index, "content_index": 0}
