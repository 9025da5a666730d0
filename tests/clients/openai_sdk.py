"""The official ``openai`` SDK pointed at a test gateway, and readers of its streams."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from openai import AsyncOpenAI


def sdk(gateway: TestClient[Any, Any], api_key: str = "unused") -> AsyncOpenAI:
    """An SDK client for the gateway (no SDK retries: a test sees every answer)."""
    return AsyncOpenAI(base_url=str(gateway.make_url("/v1")), api_key=api_key, max_retries=0)


class ResponsesReader:
    """Reassembles a response's text from Responses events, as a client should.

    The text is that of the last message item: ``response.output_item.added`` starts a new
    one, so an item that ended ``incomplete`` (a retried attempt) is dropped.
    """

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.parts: list[str] = []

    @property
    def last_sequence(self) -> int:
        """The ``sequence_number`` to resume after."""
        return int(self.events[-1].sequence_number) if self.events else -1

    @property
    def text(self) -> str:
        """The text so far."""
        return "".join(self.parts)

    def take(self, event: Any) -> None:
        """Apply one event."""
        self.events.append(event)
        if event.type == "response.output_item.added":
            self.parts = []
        elif event.type == "response.output_text.delta":
            self.parts.append(event.delta)

    @property
    def finished(self) -> bool:
        """Whether the terminal event arrived."""
        return bool(self.events) and self.events[-1].type in TERMINAL_TYPES


TERMINAL_TYPES = frozenset(
    {"response.completed", "response.incomplete", "response.failed", "response.cancelled"}
)
