"""``#sim`` lines and the per-prompt fault counts."""

from __future__ import annotations

import math

import pytest

from simulator.faults import DirectiveError, FaultKind, FaultRule, FaultState, parse_directives


def test_directives_are_read_from_any_line_and_removed_from_the_prompt() -> None:
    directives, prompt = parse_directives(
        "write a parser\r\n  #sim tokens=12 rate=inf fail=cut after=3\nin rust\n#sim seed=abc"
    )

    assert directives.tokens == 12
    assert directives.rate == math.inf
    assert directives.fail is FaultKind.CUT
    assert directives.after == 3
    assert directives.seed == "abc"
    assert prompt == "write a parser\r\nin rust"


def test_text_that_merely_mentions_sim_is_not_a_directive() -> None:
    directives, prompt = parse_directives("explain #sim tokens=3\n#simulate nothing")

    assert directives.tokens is None
    assert prompt == "explain #sim tokens=3\n#simulate nothing"


@pytest.mark.parametrize(
    "line",
    [
        "#sim tokens=-1",
        "#sim rate=nan",
        "#sim fail=404",
        "#sim times=0",
        "#sim bogus=1",
        "#sim tokens",
    ],
)
def test_invalid_directives_are_refused(line: str) -> None:
    with pytest.raises(DirectiveError):
        parse_directives(line)


def test_fail_replaces_the_default_rule_and_other_keys_refine_it() -> None:
    default = FaultRule(fault=FaultKind.STALL, after=5, times=2)

    assert parse_directives("#sim after=1")[0].fault_rule(default) == FaultRule(
        fault=FaultKind.STALL, after=1, times=2
    )
    assert parse_directives("#sim fail=429")[0].fault_rule(default) == FaultRule(
        fault=FaultKind.RATE_LIMIT
    )


def test_times_counts_requests_per_prompt() -> None:
    state = FaultState(FaultRule())
    rule = FaultRule(fault=FaultKind.SERVER_ERROR, times=2)

    assert [state.strike("a", rule) for _ in range(3)] == [
        FaultKind.SERVER_ERROR,
        FaultKind.SERVER_ERROR,
        FaultKind.NONE,
    ]
    assert state.strike("b", rule) is FaultKind.SERVER_ERROR
    state.set_default(FaultRule())
    assert state.strike("a", rule) is FaultKind.SERVER_ERROR  # counts start afresh


def test_a_rule_without_times_strikes_every_request() -> None:
    state = FaultState(FaultRule())
    rule = FaultRule(fault=FaultKind.CUT)

    assert {state.strike("a", rule) for _ in range(5)} == {FaultKind.CUT}
