"""The simulator answering like a chat model: prose and Markdown fences around its code
(``#sim fences=N``, ``--fences N``), deterministic, and what the code extractor takes out."""

from __future__ import annotations

import argparse
from typing import Any

import orjson
import pytest
from pytest_aiohttp import AiohttpClient

from simulator import SimConfig, create_app
from simulator.cli import add_parser, config_from_args
from simulator.codegen import completion_tokens
from simulator.faults import DirectiveError, FaultRule, FaultState, parse_directives
from simulator.plan import Plan, plan_completion
from simulator.request import parse_chat_request
from worker.code_extractor import extract_code


def plan(prompt: str, config: SimConfig | None = None, **params: Any) -> Plan:
    body = {"model": "m", "messages": [{"role": "user", "content": prompt}], **params}
    return plan_completion(
        parse_chat_request(orjson.dumps(body)), config or SimConfig(), FaultState(FaultRule())
    )


def bare_code(prompt: str) -> str:
    """What the simulator answers to ``prompt`` without fences."""
    directives, stripped = parse_directives(prompt)
    assert directives.tokens is not None
    return "".join(
        completion_tokens(
            stripped, count=directives.tokens, seed=directives.seed, unicode=directives.unicode
        )
    )


@pytest.mark.parametrize(
    ("prompt", "language"),
    [
        ("a binary search in go\n#sim tokens=80 fences=1", "go"),
        ("an LRU cache in python\n#sim tokens=50 fences=2 seed=x", "python"),
        ("a parser in rust\n#sim tokens=33 fences=3 unicode=1", "rust"),
        ("an event bus in typescript\n#sim tokens=7 fences=1 seed=y", "typescript"),
        ("a shell script\n#sim tokens=40 fences=2", "shell"),
    ],
)
def test_fenced_answers_hold_the_bare_code_in_their_first_block(prompt: str, language: str) -> None:
    text = "".join(plan(prompt).tokens)
    directives, _ = parse_directives(prompt)
    assert directives.fences is not None
    extraction = extract_code(text)
    assert extraction.fenced
    code = bare_code(prompt)
    assert extraction.code in (code, code + "\n")  # a line ending added to a cut-off line
    assert extraction.language == language
    assert extraction.blocks_dropped == directives.fences - 1
    assert text.splitlines()[0].strip() != ""  # a line of prose comes first
    assert text != extraction.code


def test_a_fenced_answer_is_the_same_for_the_same_prompt_and_seed() -> None:
    prompt = "a trie in java\n#sim tokens=40 fences=2"
    assert plan(prompt).tokens == plan(prompt).tokens
    assert plan(prompt).tokens != plan(prompt + " seed=other").tokens


def test_the_configured_fences_apply_unless_the_prompt_says_otherwise() -> None:
    config = SimConfig(fences=1)
    assert extract_code("".join(plan("go\n#sim tokens=20", config).tokens)).fenced
    bare = "".join(plan("go\n#sim tokens=20 fences=0", config).tokens)
    assert bare == bare_code("go\n#sim tokens=20")


def test_max_tokens_cuts_the_whole_answer_maybe_inside_the_block() -> None:
    whole = plan("go\n#sim tokens=40 fences=1").tokens
    cut = plan("go\n#sim tokens=40 fences=1", max_tokens=12)
    assert cut.tokens == whole[:12]
    assert cut.finish_reason == "length"
    uncut = plan("go\n#sim tokens=40 fences=1", max_tokens=len(whole))
    assert (uncut.tokens, uncut.finish_reason) == (whole, "stop")


@pytest.mark.parametrize("line", ["#sim fences=-1", "#sim fences=99", "#sim fences=x"])
def test_invalid_fences_are_refused(line: str) -> None:
    with pytest.raises(DirectiveError):
        parse_directives(line)


def test_the_fences_flag_becomes_the_config() -> None:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    assert config_from_args(parser.parse_args(["simulate-upstream"])).fences == 0
    args = parser.parse_args(["simulate-upstream", "--fences", "2"])
    assert config_from_args(args).fences == 2


async def test_the_stream_sends_the_fenced_answer(aiohttp_client: AiohttpClient) -> None:
    client = await aiohttp_client(create_app(SimConfig(tokens_per_second=0, fences=2)))
    prompt = "a rate limiter in python\n#sim tokens=30"
    body = {"model": "m", "messages": [{"role": "user", "content": prompt}]}
    async with client.post("/v1/chat/completions", json=body) as response:
        completion = await response.json()
    text = completion["choices"][0]["message"]["content"]
    assert text == "".join(plan(prompt, SimConfig(fences=2)).tokens)
    assert extract_code(text).blocks_dropped == 1
