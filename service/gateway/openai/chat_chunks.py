"""A job's events as Chat Completions stream chunks.

The Chat Completions format has no way to take text back, so a ``reset`` is handled by
:class:`~service.contract.append_only.AppendOnlyText`: when the retried attempt repeats what the
client
already has (a deterministic upstream), the stream goes on seamlessly; when it says something
else, the stream ends with an error chunk (``code: "attempt_diverged"``) instead of leaving the
client with text that is not the job's. A failed or cancelled job ends with an error chunk too.
"""

from __future__ import annotations

from typing import Any

import orjson

from service.contract.append_only import AppendOnlyText, Diverged
from service.contract.event_data import DoneEvent, FailedEvent, parse_event
from service.contract.events import CANCELLED, DONE, FAILED, RESET, TOKEN, format_stream_id
from service.gateway.fanout.frames import Entry
from service.gateway.openai.errors import error_body

DONE_LINE = b"data: [DONE]\n\n"


def data_line(payload: dict[str, Any]) -> bytes:
    """One ``data:`` event of the stream."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def chat_usage(usage: dict[str, Any] | None) -> dict[str, Any] | None:
    """The upstream's usage as Chat Completions reports it (the upstream speaks that API)."""
    if not usage:
        return None
    return {
        key: usage[key]
        for key in (
            "prompt_tokens",
            "completion_tokens",
            "total_tokens",
            "prompt_tokens_details",
            "completion_tokens_details",
        )
        if key in usage
    }


class ChatChunks:
    """Turns a job's entries, from its first, into one completion's stream chunks."""

    def __init__(
        self, completion_id: str, created: int, model: str, *, include_usage: bool
    ) -> None:
        self._head = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": None,
        }
        self._include_usage = include_usage
        self._text = AppendOnlyText()
        self.ended = False

    def first(self) -> bytes:
        """The chunk every stream starts with: the assistant's role."""
        return self._chunk({"role": "assistant", "content": ""}, None)

    def translate(self, entries: list[Entry]) -> bytes:
        """The chunks for the next entries (their text merged into one chunk per run)."""
        out: list[bytes] = []
        pending: list[str] = []
        for entry in entries:
            if self.ended:
                break
            try:
                if entry.kind == TOKEN:
                    pending.append(self._text.token(entry.text))
                    continue
                if entry.kind == RESET:
                    self._text.reset()
                elif entry.kind in (DONE, FAILED, CANCELLED):
                    self._flush(pending, out)
                    out.append(self._end(entry))
            except Diverged as exc:
                self._flush(pending, out)
                out.append(self._error(str(exc), "attempt_diverged"))
        self._flush(pending, out)
        return b"".join(out)

    def interrupted(self, events_url: str) -> bytes:
        """The stream's end when the gateway stops before the job does."""
        self.ended = True
        message = (
            "the gateway is shutting down before the job ended; the job goes on: read "
            f"it at {events_url}"
        )
        return data_line(error_body(503, message, code="stream_interrupted"))

    def _flush(self, pending: list[str], out: list[bytes]) -> None:
        text = "".join(pending)
        pending.clear()
        if text:
            out.append(self._chunk({"content": text}, None))

    def _end(self, entry: Entry) -> bytes:
        event = parse_event(format_stream_id(entry.id), entry.kind, entry.data)
        if isinstance(event, FailedEvent):
            return self._error(event.message, event.code)
        if not isinstance(event, DoneEvent):
            return self._error("the job was cancelled", "job_cancelled", status=409)
        self._text.finish()
        self.ended = True
        out = [self._chunk({}, event.finish_reason or "stop")]
        usage = chat_usage(event.usage)
        if self._include_usage and usage is not None:
            out.append(data_line({**self._head, "choices": [], "usage": usage}))
        out.append(DONE_LINE)
        return b"".join(out)

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        payload: dict[str, Any] = {**self._head, "choices": [choice]}
        if self._include_usage:
            payload["usage"] = None
        return data_line(payload)

    def _error(self, message: str, code: str, *, status: int = 502) -> bytes:
        self.ended = True
        return data_line(error_body(status, message, code=code))
