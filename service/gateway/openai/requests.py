"""The OpenAI request bodies tokenrelay accepts, validated, and turned into job requests.

Only what a tokenrelay job can honour is accepted: a parameter the gateway would silently
drop (tools, logprobs, n > 1, ...) is a 400 naming it, so a client never gets less than it
asked for without knowing. Every request becomes a :class:`~service.contract.jobs.JobRequest`
checked
by :func:`~service.contract.jobs.parse_job_request`, the same rules as ``POST /v1/jobs``.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from service.contract.jobs import JobRequest, parse_job_request
from service.contract.settings import Settings
from service.gateway.openai.errors import OpenAIBadRequest

M = TypeVar("M", bound=BaseModel)

# OpenAI parameters a job cannot honour; given with a value other than null, they are a 400.
CHAT_UNSUPPORTED = frozenset(
    {
        "audio",
        "frequency_penalty",
        "function_call",
        "functions",
        "logit_bias",
        "logprobs",
        "metadata",
        "modalities",
        "parallel_tool_calls",
        "prediction",
        "presence_penalty",
        "prompt_cache_key",
        "reasoning_effort",
        "response_format",
        "safety_identifier",
        "seed",
        "service_tier",
        "store",
        "tool_choice",
        "tools",
        "top_logprobs",
        "top_p",
        "user",
        "verbosity",
        "web_search_options",
    }
)
RESPONSES_UNSUPPORTED = frozenset(
    {
        "context_management",
        "conversation",
        "include",
        "max_tool_calls",
        "metadata",
        "parallel_tool_calls",
        "previous_response_id",
        "prompt",
        "prompt_cache_key",
        "reasoning",
        "safety_identifier",
        "service_tier",
        "stream_options",
        "tool_choice",
        "tools",
        "top_logprobs",
        "top_p",
        "truncation",
        "user",
    }
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TextPart(_Strict):
    """A text part of a message's content (``text`` in Chat Completions, ``input_text`` or
    ``output_text`` in Responses)."""

    type: Literal["text", "input_text", "output_text"]
    text: str


class InputMessage(_Strict):
    """One conversation message; ``developer`` is sent upstream as ``system``."""

    type: Literal["message"] | None = None
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]

    def as_job_message(self) -> dict[str, str]:
        """The message as a job takes it."""
        role = "system" if self.role == "developer" else self.role
        if isinstance(self.content, str):
            return {"role": role, "content": self.content}
        return {"role": role, "content": "\n".join(part.text for part in self.content)}


class StreamOptions(_Strict):
    """``stream_options`` of Chat Completions."""

    include_usage: bool = False


class ChatCompletionRequest(_Strict):
    """``POST /v1/chat/completions``: the subset a tokenrelay job can honour."""

    model: str | None = None
    messages: list[InputMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    stop: str | list[str] | None = None
    n: Literal[1] | None = None
    language: str | None = Field(default=None, description="tokenrelay: the page's language")
    output: Literal["code", "raw"] | None = Field(
        default=None, description="tokenrelay: 'code' = only the answer's code; default 'raw'"
    )

    @property
    def include_usage(self) -> bool:
        """Whether the stream ends with a usage chunk."""
        return self.stream_options is not None and self.stream_options.include_usage


class TextFormat(_Strict):
    """``text.format``: only plain text."""

    type: Literal["text"]


class TextConfig(_Strict):
    """``text`` of Responses: only plain text output."""

    format: TextFormat | None = None


class ResponsesRequest(_Strict):
    """``POST /v1/responses``: the subset a tokenrelay job can honour."""

    model: str | None = None
    input: str | list[InputMessage]
    instructions: str | None = None
    background: bool | None = None
    stream: bool | None = None
    store: Literal[True] | None = None
    temperature: float | None = None
    max_output_tokens: int | None = None
    text: TextConfig | None = None
    language: str | None = Field(default=None, description="tokenrelay: the page's language")
    output: Literal["code", "raw"] | None = Field(
        default=None, description="tokenrelay: 'code' = only the answer's code; default 'raw'"
    )


async def read_body(request: web.Request) -> dict[str, Any]:
    """The JSON object of the request body, or an OpenAI-style 400."""
    body = await request.read()  # bounded by the app's client_max_size
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise OpenAIBadRequest(
            "We could not parse the JSON body of your request: send a JSON object.",
            param=None,
            code="invalid_json",
        ) from None
    if not isinstance(parsed, dict):
        raise OpenAIBadRequest(
            "Invalid type for request body: expected an object.", param=None, code="invalid_type"
        )
    return parsed


def parse_chat_request(raw: dict[str, Any]) -> ChatCompletionRequest:
    """Validate a Chat Completions body (its shape; the job rules come in :func:`chat_job`)."""
    _refuse_unsupported(raw, CHAT_UNSUPPORTED, ChatCompletionRequest)
    request = _validate(ChatCompletionRequest, raw)
    if request.stream_options is not None and not request.stream:
        raise OpenAIBadRequest(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
            code="invalid_value",
        )
    if request.max_tokens is not None and request.max_completion_tokens is not None:
        raise OpenAIBadRequest(
            "Give either 'max_tokens' or 'max_completion_tokens', not both.",
            param="max_tokens",
            code="invalid_value",
        )
    return request


# Long enough for a client to reconnect through a blip, short enough not to pay for much.
CHAT_ABANDON_GRACE_SECONDS = 10.0


def chat_job(request: ChatCompletionRequest, settings: Settings) -> JobRequest:
    """The job a Chat Completions request becomes."""
    stop = [request.stop] if isinstance(request.stop, str) else request.stop
    return _job(
        {
            "messages": [message.as_job_message() for message in request.messages],
            "model": request.model,
            "language": request.language,
            "temperature": request.temperature,
            "max_tokens": request.max_completion_tokens or request.max_tokens,
            "stop": stop,
            # An OpenAI client expects what the model said: the upstream's text by default.
            "output": request.output or "raw",
            # A chat completion is held by its client: once it has been gone for a short
            # while, nobody will read the rest, so the upstream call stops (docs/openai.md).
            "on_abandon": "cancel",
            "abandon_grace_seconds": CHAT_ABANDON_GRACE_SECONDS,
        },
        settings,
    )


def parse_responses_request(raw: dict[str, Any]) -> ResponsesRequest:
    """Validate a Responses body (its shape; the job rules come in :func:`responses_job`)."""
    _refuse_unsupported(raw, RESPONSES_UNSUPPORTED, ResponsesRequest)
    return _validate(ResponsesRequest, raw)


def responses_job(request: ResponsesRequest, settings: Settings) -> JobRequest:
    """The job a Responses request becomes (``instructions`` as the first system message)."""
    if isinstance(request.input, str):
        messages = [{"role": "user", "content": request.input}]
    else:
        messages = [message.as_job_message() for message in request.input]
    if request.instructions is not None:
        messages.insert(0, {"role": "system", "content": request.instructions})
    return _job(
        {
            "messages": messages,
            "model": request.model,
            "language": request.language,
            "temperature": request.temperature,
            "max_tokens": request.max_output_tokens,
            "output": request.output or "raw",
        },
        settings,
    )


def _job(fields: dict[str, Any], settings: Settings) -> JobRequest:
    return parse_job_request({k: v for k, v in fields.items() if v is not None}, settings)


def _refuse_unsupported(
    raw: dict[str, Any], unsupported: frozenset[str], model: type[BaseModel]
) -> None:
    for name, value in raw.items():
        if name in model.model_fields:
            continue
        if name in unsupported:
            if value is None:
                continue
            raise OpenAIBadRequest(
                f"tokenrelay does not support the parameter '{name}' (docs/openai.md lists "
                "the supported OpenAI fields).",
                param=name,
                code="unsupported_parameter",
            )
        raise OpenAIBadRequest(
            f"Unrecognized request argument supplied: {name}", param=name, code="unknown_parameter"
        )


def _validate(model: type[M], raw: dict[str, Any]) -> M:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        # Of a union's alternatives, the deepest error names the part at fault.
        error = max(exc.errors(include_url=False, include_input=False), key=lambda e: len(e["loc"]))
        param = _param_path(error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "missing":
            raise OpenAIBadRequest(
                f"Missing required parameter: '{param}'.",
                param=param,
                code="missing_required_parameter",
            ) from None
        raise OpenAIBadRequest(
            f"Invalid value for '{param}': {message}.", param=param, code="invalid_value"
        ) from None


_UNION_MEMBERS = frozenset({"str", "list[TextPart]", "list[InputMessage]", "literal['text']"})


def _param_path(loc: tuple[int | str, ...]) -> str:
    """``("messages", 0, "content", "str")`` as ``messages[0].content``."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part not in _UNION_MEMBERS and not part.startswith(("function-", "literal[")):
            path += f".{part}" if path else part
    return path
