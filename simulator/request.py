"""The body of ``POST /v1/chat/completions``, validated with OpenAI's error messages."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from simulator.errors import OpenAIError

_UNPARSABLE = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
    "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
    "sent was not valid JSON. If you have trouble figuring out how to fix this, please "
    "contact us through our help center at help.openai.com.)"
)


class ContentPart(BaseModel):
    """One part of a message's content list; only text parts count for the prompt."""

    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class Message(BaseModel):
    """One chat message."""

    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        """The message's text, parts joined by newlines."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(part.text for part in self.content if part.text is not None)


class StreamOptions(BaseModel):
    """``stream_options``."""

    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class ChatRequest(BaseModel):
    """The parameters the simulator reads; others (``top_p``, ``user``, ...) are accepted."""

    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[Message] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None

    @property
    def prompt(self) -> str:
        """The last user message (empty when there is none)."""
        for message in reversed(self.messages):
            if message.role == "user":
                return message.text()
        return ""

    @property
    def token_cap(self) -> int | None:
        """``max_completion_tokens`` (the newer name) or ``max_tokens``."""
        return self.max_completion_tokens or self.max_tokens

    @property
    def include_usage(self) -> bool:
        """Whether a stream ends with a usage chunk."""
        return self.stream_options is not None and self.stream_options.include_usage


def parse_chat_request(body: bytes) -> ChatRequest:
    """Validate the request body; raises OpenAIError(400) the way OpenAI words it."""
    try:
        request = ChatRequest.model_validate_json(body, strict=True)
    except ValidationError as exc:
        raise _invalid(exc.errors()[0]) from exc
    if request.stream_options is not None and not request.stream:
        raise OpenAIError(
            400,
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
            code="invalid_value",
        )
    return request


def _invalid(error: ErrorDetails) -> OpenAIError:
    if error["type"] in ("json_invalid", "json_type"):
        return OpenAIError(400, _UNPARSABLE)
    param = _param_path(error["loc"])
    if not param:
        return OpenAIError(400, "Invalid type for request body: expected an object.")
    if error["type"] == "missing":
        return OpenAIError(
            400,
            f"Missing required parameter: '{param}'.",
            param=param,
            code="missing_required_parameter",
        )
    return OpenAIError(
        400, f"Invalid value for '{param}': {error['msg']}.", param=param, code="invalid_value"
    )


_FIELD_NAMES = frozenset(
    name
    for model in (ChatRequest, Message, ContentPart, StreamOptions)
    for name in model.model_fields
)


def _param_path(loc: tuple[int | str, ...]) -> str:
    """``("messages", 0, "content", "str")`` as ``messages[0].content``.

    Parts that are not field names are the union members pydantic tried; OpenAI's
    ``param`` leaves them out.
    """
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in _FIELD_NAMES:
            path += f".{part}" if path else part
    return path
