"""Generated code: deterministic, tokenized like a BPE model, NUL-free unless asked."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.codegen import completion_tokens
from simulator.languages import detect_language
from simulator.tokenizer import MAX_TOKEN_CHARS, split_tokens

prompts = st.text(max_size=200)
seeds = st.text(max_size=10)


@settings(max_examples=60, deadline=None)
@given(prompt=prompts, seed=seeds, unicode=st.booleans(), count=st.integers(0, 400))
def test_tokens_are_one_to_eight_characters_and_never_nul(
    prompt: str, seed: str, unicode: bool, count: int
) -> None:
    tokens = completion_tokens(prompt, count=count, seed=seed, unicode=unicode)

    assert len(tokens) == count
    assert all(1 <= len(token) <= MAX_TOKEN_CHARS for token in tokens)
    assert all("\x00" not in token for token in tokens)


@settings(max_examples=40, deadline=None)
@given(prompt=prompts, seed=seeds, unicode=st.booleans())
def test_same_inputs_give_the_same_text_and_longer_extends_shorter(
    prompt: str, seed: str, unicode: bool
) -> None:
    short = completion_tokens(prompt, count=50, seed=seed, unicode=unicode)
    long = completion_tokens(prompt, count=200, seed=seed, unicode=unicode)

    assert completion_tokens(prompt, count=50, seed=seed, unicode=unicode) == short
    assert long[:50] == short


def test_seed_and_prompt_change_the_text() -> None:
    base = "".join(completion_tokens("python lru cache", count=200))

    assert "".join(completion_tokens("python lru cache", count=200, seed="2")) != base
    assert "".join(completion_tokens("python trie", count=200)) != base


def test_nul_directive_puts_nul_characters_in_the_text() -> None:
    tokens = completion_tokens("c", count=120, nul=True)

    assert tokens.count("\x00") >= 2


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=300), seed=st.integers(0, 2**32))
def test_split_tokens_gives_the_text_back(text: str, seed: int) -> None:
    tokens = split_tokens(text, random.Random(seed))

    assert "".join(tokens) == text
    assert all(1 <= len(token) <= MAX_TOKEN_CHARS for token in tokens)


def test_the_first_language_the_prompt_names_is_used() -> None:
    assert detect_language("Write a Rust parser, not Python").name == "rust"
    assert detect_language("port this C++ class").name == "cpp"
    assert detect_language("a golang http server").name == "go"
    assert detect_language("sort a list").name == "python"


def test_code_reads_like_the_language() -> None:
    samples = {
        "rust": "pub fn ",
        "go": "func ",
        "typescript": "export function ",
        "ruby": "def ",
        "bash": "() {",
        "java": "static int ",
    }
    for language, marker in samples.items():
        assert marker in "".join(completion_tokens(f"in {language}", count=120)), language


@settings(max_examples=40, deadline=None)
@given(prompt=prompts, seed=seeds, unicode=st.booleans(), count=st.integers(1, 300))
def test_a_whole_program_has_at_least_count_tokens_and_ends_a_line(
    prompt: str, seed: str, unicode: bool, count: int
) -> None:
    whole = completion_tokens(prompt, count=count, seed=seed, unicode=unicode, whole=True)

    assert len(whole) >= count
    assert whole == completion_tokens(prompt, count=len(whole), seed=seed, unicode=unicode)
    assert "".join(whole).endswith(("\n", "\r"))  # never mid-line
