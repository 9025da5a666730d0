"""OpenAI Chat Completions objects and their server-sent-event framing."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import TypeAlias

import orjson

SYSTEM_FINGERPRINT = "fp_5f2b7e1c9a"
SSE_DONE = b"data: [DONE]\n\n"
SSE_KEEPALIVE = b": keepalive\n\n"

Json: TypeAlias = dict[str, object]


def sse_data(payload: Json) -> bytes:
    """One ``data:`` event; JSON escapes CR and LF, so the payload is one line."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def new_completion_id() -> str:
    """An id shaped like OpenAI's ``chatcmpl-…``."""
    return "chatcmpl-" + secrets.token_urlsafe(21).replace("-", "x").replace("_", "y")


def usage(prompt_tokens: int, completion_tokens: int) -> Json:
    """The ``usage`` object."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


@dataclass(frozen=True)
class Completion:
    """The fields every object of one completion shares."""

    model: str
    include_usage: bool = False
    id: str = field(default_factory=new_completion_id)
    created: int = field(default_factory=lambda: int(time.time()))

    def role_chunk(self) -> Json:
        """The first chunk of a stream."""
        return self._chunk({"role": "assistant", "content": ""}, None)

    def content_chunk(self, text: str) -> Json:
        """A chunk carrying one token."""
        return self._chunk({"content": text}, None)

    def finish_chunk(self, finish_reason: str) -> Json:
        """The chunk that ends the choice."""
        return self._chunk({}, finish_reason)

    def usage_chunk(self, usage: Json) -> Json:
        """The last chunk when ``stream_options.include_usage`` is set."""
        return {**self._head("chat.completion.chunk"), "choices": [], "usage": usage}

    def message(self, text: str, finish_reason: str, usage: Json) -> Json:
        """The whole ``chat.completion`` object of a non-streaming request."""
        choice: Json = {
            "index": 0,
            "message": {"role": "assistant", "content": text, "refusal": None},
            "logprobs": None,
            "finish_reason": finish_reason,
        }
        return {**self._head("chat.completion"), "choices": [choice], "usage": usage}

    def _chunk(self, delta: Json, finish_reason: str | None) -> Json:
        choice: Json = {
            "index": 0,
            "delta": delta,
            "logprobs": None,
            "finish_reason": finish_reason,
        }
        chunk: Json = {**self._head("chat.completion.chunk"), "choices": [choice]}
        if self.include_usage:
            # OpenAI sends "usage": null on every chunk but the last when usage is asked for.
            chunk["usage"] = None
        return chunk

    def _head(self, object_type: str) -> Json:
        return {
            "id": self.id,
            "object": object_type,
            "created": self.created,
            "model": self.model,
            "system_fingerprint": SYSTEM_FINGERPRINT,
        }
