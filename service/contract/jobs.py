"""The job: what a submitter may ask for (validated) and how its record reads back."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, model_validator

from service.contract.edits import EditTarget
from service.contract.errors import BadRequest, PayloadTooLarge
from service.contract.settings import Settings

JOB_ID_BYTES = 16  # 128 bits: job ids are unguessable


def new_job_id() -> str:
    """A fresh URL-safe job id (22 characters, no hash-tag braces).

    Never starting with ``-`` or ``_``: an id like ``-x…`` would read as an option to
    ``tokenrelay watch`` and other command lines. (Dropping those ids costs under one bit of
    the 132 random bits.)"""
    while True:
        job_id = secrets.token_urlsafe(JOB_ID_BYTES)
        if job_id[0].isalnum():
            return job_id


def is_job_id(text: str) -> bool:
    """Cheap shape check before a job id is used in a Redis key."""
    return 8 <= len(text) <= 64 and all(c.isalnum() or c in "-_" for c in text)


class Message(BaseModel):
    """One chat message, as in the OpenAI Chat Completions API."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Literal["system", "user", "assistant"]
    content: str


SESSION_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"


class JobRequest(BaseModel):
    """A generation request; validate with :func:`parse_job_request` to apply the limits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: str | None = None
    messages: list[Message] | None = None
    language: str | None = None
    model: str | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    max_tokens: int | None = Field(default=None, ge=1)
    stop: list[str] | None = Field(default=None, min_length=1, max_length=4)
    # "code": the output is the answer's code, without prose and Markdown fences
    # (worker/code_extractor.py); "raw": the upstream's text untouched.
    output: Literal["code", "raw"] = "code"
    # What happens when nobody watches: "continue" (the default: a background job runs to its
    # end), or "cancel" once no viewer has been connected, on any gateway, for the grace.
    on_abandon: Literal["continue", "cancel"] = "continue"
    abandon_grace_seconds: float = Field(default=30.0, ge=1.0, le=3600.0)
    # An editor tab, say: a new job in the same session replaces (cancels) the one before.
    session: str | None = Field(default=None, pattern=SESSION_PATTERN)
    # An edit of a document (the page's generate-into-a-document): the prompt is the change
    # asked for, built into the edit prompt with the selection and its surroundings
    # (worker/prompts.py); the record keeps it, base text included, for share-link viewers.
    target: EditTarget | None = None

    @model_validator(mode="after")
    def _check_against_settings(self, info: ValidationInfo) -> JobRequest:
        settings = info.context.get("settings") if isinstance(info.context, dict) else None
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("give exactly one of `prompt` or `messages`")
        if self.prompt is not None and not self.prompt.strip():
            raise ValueError("`prompt` is empty")
        if self.messages is not None and not any(m.role == "user" for m in self.messages):
            raise ValueError("`messages` needs at least one user message")
        if self.target is not None and self.prompt is None:
            raise ValueError("a `target` takes a `prompt` (the change to make), not `messages`")
        if settings is None:
            return self
        if self.language is not None and self.language not in settings.languages:
            raise ValueError(f"unknown language {self.language!r}")
        if self.model is not None and settings.models and self.model not in settings.models:
            raise ValueError(f"unknown model {self.model!r}; allowed: {settings.models}")
        if self.max_tokens is not None and self.max_tokens > settings.max_tokens_limit:
            raise ValueError(f"`max_tokens` is above the limit of {settings.max_tokens_limit}")
        return self

    @property
    def prompt_chars(self) -> int:
        """Characters of prompt text, counted the same way for both input forms."""
        if self.prompt is not None:
            # An edit sends its selection upstream whole (its surroundings are bounded).
            selected = len(self.target.selected) if self.target is not None else 0
            return len(self.prompt) + selected
        return sum(len(m.content) for m in self.messages or ())


def parse_job_request(raw: object, settings: Settings) -> JobRequest:
    """Validate a decoded JSON body; every failure is a :class:`BadRequest` with a clear message."""
    if not isinstance(raw, dict):
        raise BadRequest("the body must be a JSON object", code="invalid_body")
    try:
        request = JobRequest.model_validate(raw, context={"settings": settings})
    except ValidationError as exc:
        raise BadRequest(_describe(exc), code="invalid_request") from None
    if request.prompt_chars > settings.max_prompt_chars:
        raise PayloadTooLarge(
            f"the prompt has {request.prompt_chars} characters; the limit is "
            f"{settings.max_prompt_chars}",
            code="prompt_too_large",
        )
    return request


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def now_ms() -> int:
    """Wall-clock milliseconds, the unit of every timestamp in a job record."""
    return int(datetime.now(UTC).timestamp() * 1000)


def _iso(ms: str | None) -> str | None:
    if not ms:
        return None
    return datetime.fromtimestamp(int(ms) / 1000, UTC).isoformat(timespec="milliseconds")


def _json_or_none(text: str | None) -> Any:
    return orjson.loads(text) if text else None


class JobRecord(BaseModel):
    """A job's record as stored in its Redis hash (all fields text)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str
    status: str
    created_at: str
    request: str
    model: str
    language: str = ""
    attempt: int = 0
    deliveries: int = 0
    worker: str = ""
    started_at: str | None = None
    attempt_started_at: str | None = None
    first_token_at: str | None = None
    finished_at: str | None = None
    finish_reason: str | None = None
    usage: str | None = None
    error: str | None = None
    last_id: str = ""
    terminal_id: str | None = None
    detected_language: str | None = None
    blocks_dropped: int = 0

    @classmethod
    def from_hash(cls, raw: Mapping[Any, Any]) -> JobRecord:
        """Read a record from HGETALL's reply."""
        return cls.model_validate({k.decode(): v.decode("utf-8") for k, v in raw.items()})

    @property
    def job_request(self) -> JobRequest:
        """The request as submitted (already validated on the way in)."""
        return JobRequest.model_validate_json(self.request)

    def to_api(
        self, *, output: str, viewers: int | None = None, raw_output: str | None = None
    ) -> dict[str, Any]:
        """The public JSON shape of ``GET /v1/jobs/{id}`` (``raw_output``: the upstream's text
        of a code-only job; a raw job's is its ``output``)."""
        request = self.job_request
        # Two waits users tell apart: the queue's (created → first attempt's start) and the
        # upstream's (the current attempt's start → its first token).
        queue_wait = None
        if self.started_at:
            queue_wait = int(self.started_at) - int(self.created_at)
        ttft = None
        if self.first_token_at and self.attempt_started_at:
            ttft = int(self.first_token_at) - int(self.attempt_started_at)
        body: dict[str, Any] = {
            "id": self.id,
            "status": self.status,
            "model": self.model,
            "language": self.language or None,
            "prompt": request.prompt,
            "messages": ([m.model_dump() for m in request.messages] if request.messages else None),
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
            "attempt": self.attempt,
            "created_at": _iso(self.created_at),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "queue_wait_ms": queue_wait,
            "time_to_first_token_ms": ttft,
            "finish_reason": self.finish_reason,
            "usage": _json_or_none(self.usage),
            "error": _json_or_none(self.error),
            "last_event_id": self.last_id or None,
            "output": output,
            "output_mode": request.output,
            "raw_output": output if request.output == "raw" else (raw_output or ""),
            "detected_language": self.detected_language,
            "blocks_dropped": self.blocks_dropped,
            "target": request.target.model_dump() if request.target is not None else None,
        }
        if viewers is not None:
            body["viewers"] = viewers
        return body
