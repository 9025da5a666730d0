"""A job's entries as the AI SDK's UI message stream (protocol v1): ``data:`` frames of JSON
chunks, then ``data: [DONE]``.

The stream is a fold over the job's entries from its first one, so every reader, on any
gateway, live or after the end, gets the same chunks; a resume (``GET .../stream``) sends the
whole stream again from its start, which ``DefaultChatTransport`` expects
(``resumeStreamIsReplay``): its first ``start`` chunk makes the client rebuild the message
rather than add to it.

=================  ============================================================================
job entry          UI message chunks
=================  ============================================================================
(stream opens)     ``start`` (``messageId: msg_<job id>``, the same for every reader), then
                   ``start-step``
``status``         none
``token``          ``text-start`` (id ``text-<n>``, n = 1, 2, ... per attempt that wrote text)
                   when no text part is open, then ``text-delta`` (a run of tokens merged)
``reset``          ``text-end`` for the open part, then ``reset-step``: the client drops every
                   part since ``start-step``, the abandoned attempt's text included; the next
                   attempt's text comes in a new part, ``text-<n+1>``
``done``           ``text-end``, ``finish-step``, ``finish`` (``finishReason``), ``[DONE]``
``failed``         ``text-end``, ``error`` (``errorText``), ``[DONE]``
``cancelled``      ``text-end``, ``abort`` (``reason: "cancelled"``), ``[DONE]``
=================  ============================================================================
"""

from __future__ import annotations

from service.contract.event_data import DoneEvent, FailedEvent, parse_event
from service.contract.events import CANCELLED, DONE, FAILED, RESET, TOKEN, format_stream_id
from service.gateway.fanout.frames import Entry
from service.gateway.openai.chat_chunks import DONE_LINE, data_line

UI_MESSAGE_STREAM_HEADER = "x-vercel-ai-ui-message-stream"
UI_MESSAGE_STREAM_VERSION = "v1"

MESSAGE_ID_PREFIX = "msg_"

# The upstream's finish_reason (OpenAI's words) as the AI SDK's FinishReason.
_FINISH_REASONS = {
    "stop": "stop",
    "length": "length",
    "content_filter": "content-filter",
    "tool_calls": "tool-calls",
    "function_call": "tool-calls",
}


def message_id(job_id: str) -> str:
    """The assistant message's id: the job's, so a resumed stream replaces the message the
    client already shows instead of adding a second one."""
    return f"{MESSAGE_ID_PREFIX}{job_id}"


def finish_reason(reason: str | None) -> str:
    """The AI SDK's ``finishReason`` for the upstream's ``finish_reason``."""
    if reason is None:
        return "stop"
    return _FINISH_REASONS.get(reason, "other")


class UIMessageChunks:
    """Turns a job's entries, from its first, into one assistant message's stream."""

    def __init__(self, job_id: str) -> None:
        self._message_id = message_id(job_id)
        self._parts = 0
        self._open: str | None = None
        self.ended = False

    def start(self) -> bytes:
        """The chunks every stream starts with."""
        return data_line({"type": "start", "messageId": self._message_id}) + data_line(
            {"type": "start-step"}
        )

    def translate(self, entries: list[Entry]) -> bytes:
        """The chunks for the next entries (a run of tokens is one ``text-delta``)."""
        out: list[bytes] = []
        pending: list[str] = []
        for entry in entries:
            if self.ended:
                break
            if entry.kind == TOKEN:
                if self._open is None:
                    self._parts += 1
                    self._open = f"text-{self._parts}"
                    out.append(data_line({"type": "text-start", "id": self._open}))
                pending.append(entry.text)
                continue
            self._flush(pending, out)
            if entry.kind == RESET:
                self._close(out)
                out.append(data_line({"type": "reset-step"}))
            elif entry.kind in (DONE, FAILED, CANCELLED):
                self._close(out)
                out.append(self._end(entry))
        self._flush(pending, out)
        return b"".join(out)

    def _flush(self, pending: list[str], out: list[bytes]) -> None:
        text = "".join(pending)
        pending.clear()
        if text and self._open is not None:
            out.append(data_line({"type": "text-delta", "id": self._open, "delta": text}))

    def _close(self, out: list[bytes]) -> None:
        if self._open is not None:
            out.append(data_line({"type": "text-end", "id": self._open}))
            self._open = None

    def _end(self, entry: Entry) -> bytes:
        self.ended = True
        event = parse_event(format_stream_id(entry.id), entry.kind, entry.data)
        if isinstance(event, DoneEvent):
            chunks = [
                {"type": "finish-step"},
                {"type": "finish", "finishReason": finish_reason(event.finish_reason)},
            ]
        elif isinstance(event, FailedEvent):
            text = event.message or "the generation failed"
            chunks = [{"type": "error", "errorText": f"{text} ({event.code})"}]
        else:
            chunks = [{"type": "abort", "reason": "cancelled"}]
        return b"".join(data_line(chunk) for chunk in chunks) + DONE_LINE
