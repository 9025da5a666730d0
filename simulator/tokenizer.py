"""A BPE-like tokenizer: splits text into the small pieces a real model streams."""

from __future__ import annotations

import random
import re

MAX_TOKEN_CHARS = 8

# GPT-2's pre-tokenizer, spelled with the stdlib's `re`: contractions, words with
# one leading space, numbers of up to three digits, punctuation runs, whitespace.
_PIECE = re.compile(r"'(?:s|t|re|ve|m|ll|d)| ?[^\W\d_]+| ?\d{1,3}| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+")
_ASCII_RUNS = re.compile(r"[\x00-\x7f]+|[^\x00-\x7f]+")


def split_tokens(text: str, rng: random.Random) -> list[str]:
    """Split ``text`` into tokens of 1-8 characters whose concatenation is ``text``."""
    tokens: list[str] = []
    for piece in _PIECE.finditer(text):
        for run in _ASCII_RUNS.finditer(piece.group()):
            tokens.extend(_cut(run.group(), rng))
    return tokens


def count_tokens(text: str) -> int:
    """How many tokens ``text`` is, for usage figures."""
    return len(split_tokens(text, random.Random(0)))


def _cut(run: str, rng: random.Random) -> list[str]:
    """Cut a run of one script into tokens.

    Non-ASCII text goes out one or two code points at a time (a byte-level BPE
    splits it finely, and the pieces may fall inside a ZWJ emoji sequence); a CRLF
    is sometimes split between two tokens, as real tokenizers do.
    """
    if not run.isascii():
        return _chunks(run, rng, 1, 2)
    if len(run) <= MAX_TOKEN_CHARS:
        crlf = run.find("\r\n")
        if crlf >= 0 and rng.random() < 0.25:
            return [run[: crlf + 1], run[crlf + 1 :]]
        return [run]
    return _chunks(run, rng, 3, MAX_TOKEN_CHARS)


def _chunks(run: str, rng: random.Random, low: int, high: int) -> list[str]:
    pieces: list[str] = []
    start = 0
    while start < len(run):
        size = rng.randint(low, high)
        pieces.append(run[start : start + size])
        start += size
    return pieces
