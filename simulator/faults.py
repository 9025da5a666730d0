"""Per-request ``#sim`` directives, fault rules, and how often each rule has fired."""

from __future__ import annotations

import re
from collections import OrderedDict
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from simulator.fences import MAX_FENCES

MAX_COMPLETION_TOKENS = 100_000
"""Upper bound on the tokens of one completion, so a directive cannot exhaust memory."""

_DIRECTIVE_LINE = re.compile(r"^[ \t]*#sim(?=[ \t\r\n]|\Z)([^\r\n]*)(?:\r\n|\r|\n)?", re.MULTILINE)


class FaultKind(StrEnum):
    """What goes wrong with a request."""

    NONE = "none"
    RATE_LIMIT = "429"
    SERVER_ERROR = "500"
    CUT = "cut"
    STALL = "stall"


class FaultRule(BaseModel):
    """A fault, where it strikes, and for how many requests of one prompt."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fault: FaultKind = FaultKind.NONE
    # cut/stall strike after this many content chunks; 429/500 strike before the stream.
    after: int = Field(default=0, ge=0)
    # Strike only the first K requests carrying the same prompt; None = every request.
    times: int | None = Field(default=None, ge=1)
    # Seconds, sent as the 429's Retry-After.
    retry_after: float = Field(default=1.0, ge=0, allow_inf_nan=False)


class DirectiveError(ValueError):
    """A ``#sim`` line the simulator cannot follow."""


class Directives(BaseModel):
    """The ``key=value`` pairs of a prompt's ``#sim`` lines; unset keys are None/defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tokens: int | None = Field(default=None, ge=0, le=MAX_COMPLETION_TOKENS)
    rate: float | None = Field(default=None, ge=0)  # tokens/s; 0 or inf = unpaced
    fail: FaultKind | None = None
    after: int | None = Field(default=None, ge=0)
    times: int | None = Field(default=None, ge=1)
    retry_after: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    unicode: bool = False
    nul: bool = False
    finish: Literal["stop", "length"] | None = None
    seed: str = ""
    # Answer like a chat model: prose, then this many fenced blocks (simulator/fences.py).
    fences: int | None = Field(default=None, ge=0, le=MAX_FENCES)

    def fault_rule(self, default: FaultRule) -> FaultRule:
        """The request's rule: ``fail=`` replaces ``default``; after/times/retry_after refine it."""
        base = default if self.fail is None else FaultRule(fault=self.fail)
        refinements = {
            "after": self.after,
            "times": self.times,
            "retry_after": self.retry_after,
        }
        return base.model_copy(update={k: v for k, v in refinements.items() if v is not None})


def parse_directives(prompt: str) -> tuple[Directives, str]:
    """Read every ``#sim key=value ...`` line of ``prompt`` (later keys win).

    Returns the directives and the prompt without those lines (and without surrounding
    whitespace), which is what the generated text depends on. Raises DirectiveError
    on unknown keys or bad values.
    """
    pairs: dict[str, str] = {}
    for match in _DIRECTIVE_LINE.finditer(prompt):
        for item in match.group(1).split():
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise DirectiveError(f"#sim expects key=value pairs, got {item!r}")
            pairs[key] = value
    try:
        directives = Directives.model_validate(pairs)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(part) for part in error["loc"])
        raise DirectiveError(
            f"invalid #sim directive {key}={pairs.get(key, '')!r}: {error['msg']}"
        ) from exc
    return directives, _DIRECTIVE_LINE.sub("", prompt).strip()


class FaultState:
    """The server's default rule and, per (prompt, rule), how many requests it has seen.

    Counting by the exact prompt lets concurrent tests use ``times=`` without
    interfering; the memory is bounded by forgetting the least recently seen prompts.
    """

    def __init__(self, default: FaultRule, memory: int = 10_000) -> None:
        self._default = default
        self._memory = memory
        self._seen: OrderedDict[tuple[str, FaultRule], int] = OrderedDict()

    @property
    def default(self) -> FaultRule:
        """The rule for requests whose prompt does not say ``fail=``."""
        return self._default

    def set_default(self, rule: FaultRule) -> None:
        """Replace the default rule and forget every count, so ``times`` starts afresh."""
        self._default = rule
        self._seen.clear()

    def strike(self, prompt: str, rule: FaultRule) -> FaultKind:
        """The fault this request gets: ``rule.fault`` unless its ``times`` are used up."""
        if rule.fault is FaultKind.NONE or rule.times is None:
            return rule.fault
        key = (prompt, rule)
        seen = self._seen.pop(key, 0)
        self._seen[key] = seen + 1
        while len(self._seen) > self._memory:
            self._seen.popitem(last=False)
        return rule.fault if seen < rule.times else FaultKind.NONE
