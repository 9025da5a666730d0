"""Deciding what a completion request gets: its tokens, finish reason, pace and fault."""

from __future__ import annotations

import math
from dataclasses import dataclass

from simulator.codegen import completion_tokens
from simulator.config import SimConfig
from simulator.errors import OpenAIError
from simulator.faults import DirectiveError, FaultKind, FaultRule, FaultState, parse_directives
from simulator.fences import fenced_tokens
from simulator.languages import detect_language
from simulator.request import ChatRequest
from simulator.tokenizer import count_tokens


@dataclass(frozen=True)
class Plan:
    """Everything the response will do, decided before the first byte is sent."""

    tokens: list[str]
    finish_reason: str
    rate: float  # tokens/s; math.inf = unpaced
    fault: FaultKind  # NONE when the rule does not strike this request
    rule: FaultRule
    prompt_tokens: int

    @property
    def strike_at(self) -> int | None:
        """Content chunks sent before a cut or stall strikes; None when neither does."""
        if self.fault in (FaultKind.CUT, FaultKind.STALL):
            return self.rule.after
        return None


def plan_completion(request: ChatRequest, config: SimConfig, faults: FaultState) -> Plan:
    """The plan for ``request``; counts the request against its fault rule's ``times``."""
    try:
        directives, prompt = parse_directives(request.prompt)
    except DirectiveError as exc:
        raise OpenAIError(400, str(exc), param="messages", code="invalid_value") from exc
    planned = config.default_tokens if directives.tokens is None else directives.tokens
    # The default answer is a whole program (it ends after a function); ``tokens=`` is exact.
    whole = directives.tokens is None
    fences = config.fences if directives.fences is None else directives.fences
    cap = request.token_cap
    capped = cap is not None and cap < planned
    count = min(planned, cap) if cap is not None and not (fences or whole) else planned
    rate = config.tokens_per_second if directives.rate is None else directives.rate
    rule = directives.fault_rule(faults.default)
    tokens = completion_tokens(
        prompt,
        count=count,
        seed=directives.seed,
        unicode=directives.unicode,
        nul=directives.nul,
        whole=whole,
    )
    if whole and not fences:  # a cap that cuts the program short: ``length``
        capped = cap is not None and cap < len(tokens)
        tokens = tokens[:cap] if capped else tokens
    if fences:
        # ``tokens=`` counts the code; a cap cuts the whole answer (maybe inside the block).
        tokens = fenced_tokens(
            prompt, tokens, detect_language(prompt), blocks=fences, seed=directives.seed
        )
        capped = cap is not None and cap < len(tokens)
        tokens = tokens[:cap] if capped else tokens
    return Plan(
        tokens=tokens,
        finish_reason=directives.finish or ("length" if capped else "stop"),
        rate=rate if rate > 0 else math.inf,
        fault=faults.strike(request.prompt, rule),
        rule=rule,
        prompt_tokens=sum(count_tokens(m.text()) + 3 for m in request.messages) + 3,
    )
