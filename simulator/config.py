"""The simulated upstream's configuration."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from simulator.faults import MAX_COMPLETION_TOKENS, FaultRule
from simulator.fences import MAX_FENCES


class SimConfig(BaseModel):
    """How the simulated upstream behaves where a request's ``#sim`` line says nothing."""

    model_config = ConfigDict(extra="forbid")

    # Pace of content chunks; 0 or inf = as fast as possible.
    tokens_per_second: float = Field(default=50, ge=0)
    # Tokens of a completion whose request does not say ``tokens=``.
    default_tokens: int = Field(default=120, ge=0, le=MAX_COMPLETION_TOKENS)
    # When set, /v1/* requires ``Authorization: Bearer <api_key>``.
    api_key: str | None = None
    # Models /v1/chat/completions accepts; empty = any.
    models: list[str] = Field(default_factory=list)
    # The fault of every request whose prompt does not say ``fail=``.
    fault: FaultRule = FaultRule()
    # A ``: keepalive`` comment after every N content chunks; 0 = never.
    keepalive_every: int = Field(default=16, ge=0)
    # How long a ``stall`` holds the connection before closing it.
    stall_seconds: float = Field(default=600, gt=0)
    # Fenced blocks of an answer whose request does not say ``fences=``; 0 = bare code.
    fences: int = Field(default=0, ge=0, le=MAX_FENCES)
    # Completion requests kept for GET /_sim/requests.
    log_limit: int = Field(default=10_000, ge=1)
