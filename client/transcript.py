"""A job's state and text as its events tell them."""

from __future__ import annotations

from dataclasses import dataclass, field

from service.contract.event_data import (
    CancelledEvent,
    DoneEvent,
    FailedEvent,
    JobEvent,
    ResetEvent,
    StatusEvent,
    TokenEvent,
)


@dataclass
class Transcript:
    """Apply events in order; ``text`` is the output since the last ``reset``."""

    status: str = "unknown"
    attempt: int = 0
    finish_reason: str | None = None
    error: FailedEvent | None = None
    last_event_id: str | None = None
    tokens: int = 0
    # The language the current attempt's code block names (a code-only job's status event).
    detected_language: str | None = None
    _parts: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The current attempt's text."""
        return "".join(self._parts)

    @property
    def ended(self) -> bool:
        """Whether a terminal event was applied."""
        return self.status in ("done", "failed", "cancelled")

    def apply(self, event: JobEvent) -> None:
        """Take the next event."""
        self.last_event_id = event.id
        if isinstance(event, TokenEvent):
            self._parts.append(event.text)
            self.tokens += 1
        elif isinstance(event, ResetEvent):
            self._parts.clear()
            self.attempt = event.attempt
            self.detected_language = None
        elif isinstance(event, StatusEvent):
            if event.attempt != self.attempt:
                self.detected_language = None  # a new attempt detects afresh
            self.status = event.status
            self.attempt = event.attempt
            if event.detected_language is not None:
                self.detected_language = event.detected_language
        elif isinstance(event, DoneEvent):
            self.status = "done"
            self.finish_reason = event.finish_reason
        elif isinstance(event, FailedEvent):
            self.status = "failed"
            self.error = event
        elif isinstance(event, CancelledEvent):
            self.status = "cancelled"

    def start_from(self, text: str, last_event_id: str | None, status: str) -> None:
        """Begin from a job record's output instead of the job's first event."""
        self._parts = [text] if text else []
        self.last_event_id = last_event_id
        self.status = status
