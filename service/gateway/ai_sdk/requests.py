"""The AI SDK's chat request (``useChat`` with ``DefaultChatTransport``), validated, and the job
it becomes.

The body is ``{"id": <chat id>, "messages": [UIMessage, ...], "trigger", "messageId"}`` plus
whatever the app adds through the transport's ``body`` option; tokenrelay takes the job
fields ``model``, ``language``, ``temperature`` and ``max_tokens`` there. Any other top-level
field is a 400 (``unknown_parameter``), so a client never gets less than it asked for without
knowing. Inside a message the AI SDK's own shape is read loosely (fields it adds over time are
ignored), but only parts a tokenrelay job can honour are taken: ``text`` parts become the
message's content (joined with newlines), ``step-start`` is structure only; any other part
(files, tools, reasoning, data) is a 400 ``unsupported_part`` naming it. A message with no
text part (an answer interrupted before its first token) is left out. The job request is
checked by :func:`~service.contract.jobs.parse_job_request`: the same rules as
``POST /v1/jobs``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from service.contract.errors import BadRequest
from service.contract.jobs import JobRequest, parse_job_request
from service.contract.settings import Settings

TEXT_PART = "text"
STEP_START_PART = "step-start"


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class UIPart(_Loose):
    """One part of a UI message (only its type and, for text, its text are read)."""

    type: str
    text: str | None = None


class UIMessage(_Loose):
    """One message of the conversation, as ``useChat`` keeps it."""

    id: str | None = None
    role: Literal["system", "user", "assistant"]
    parts: list[UIPart]


class ChatRequest(BaseModel):
    """``POST /v1/ai-sdk/chat``: the conversation so far and the chat it belongs to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=255, description="the chat id (useChat's `id`)")
    messages: list[UIMessage] = Field(min_length=1)
    trigger: Literal["submit-message", "regenerate-message"] | None = None
    message_id: str | None = Field(default=None, alias="messageId")
    model: str | None = None
    language: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None

    @field_validator("id")
    @classmethod
    def _printable(cls, value: str) -> str:
        if not value.isprintable():
            raise ValueError("the chat id must be printable characters")
        return value


def parse_chat_request(raw: object) -> ChatRequest:
    """Validate a decoded body; every failure is a :class:`BadRequest` naming the field."""
    if not isinstance(raw, dict):
        raise BadRequest("the body must be a JSON object", code="invalid_body")
    unknown = sorted(set(raw) - _FIELDS)
    if unknown:
        raise BadRequest(
            f"unknown field {unknown[0]!r}: the chat takes id, messages, trigger, messageId "
            "and the job fields model, language, temperature, max_tokens (docs/ai-sdk.md)",
            code="unknown_parameter",
        )
    try:
        request = ChatRequest.model_validate(raw)
    except ValidationError as exc:
        raise BadRequest(_describe(exc), code="invalid_request") from None
    for m, message in enumerate(request.messages):
        for p, part in enumerate(message.parts):
            if part.type == TEXT_PART and part.text is None:
                raise BadRequest(
                    f"messages[{m}].parts[{p}]: a text part needs its `text`",
                    code="invalid_request",
                )
            if part.type not in (TEXT_PART, STEP_START_PART):
                raise BadRequest(
                    f"messages[{m}].parts[{p}]: tokenrelay sends only text upstream; a "
                    f"{part.type!r} part cannot be honoured",
                    code="unsupported_part",
                )
    return request


def chat_job(request: ChatRequest, settings: Settings) -> JobRequest:
    """The job a chat request becomes: its messages' text, and the job fields it gave."""
    messages = [
        {"role": message.role, "content": "\n".join(texts)}
        for message in request.messages
        if (texts := [part.text for part in message.parts if part.text is not None])
    ]
    fields: dict[str, Any] = {
        "messages": messages,
        "model": request.model,
        "language": request.language,
        "temperature": request.temperature,
        "max_tokens": request.max_tokens,
    }
    return parse_job_request({k: v for k, v in fields.items() if v is not None}, settings)


_FIELDS = frozenset(field.alias or name for name, field in ChatRequest.model_fields.items())


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False, include_input=False):
        where = "".join(
            f"[{loc}]" if isinstance(loc, int) else (f".{loc}" if i else str(loc))
            for i, loc in enumerate(error["loc"])
        )
        message = str(error["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)
