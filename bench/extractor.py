"""The code extractor's CPU cost per 1,000 tokens (worker/code_extractor.py).

Feeds answers of the simulated upstream (its own tokenizer and fenced answers, as a worker
gets them) through a fresh :class:`CodeExtractor` per answer, and prints the CPU time per
1,000 tokens, the best of several repeats, beside a loop that only hands the tokens on (the
floor of any per-token work). Every output is checked against the whole-text rules first.

    .venv/bin/python -m bench.extractor [--answers 40] [--tokens 600] [--repeat 7]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from simulator.codegen import completion_tokens
from simulator.fences import fenced_tokens
from simulator.languages import detect_language
from worker.code_extractor import CodeExtractor, extract_code

TOPICS = ("binary search in go", "LRU cache in python", "trie in rust", "router in typescript")


@dataclass(frozen=True, slots=True)
class Case:
    """A kind of answer: its token lists."""

    name: str
    answers: list[list[str]]

    @property
    def tokens(self) -> int:
        return sum(len(answer) for answer in self.answers)

    @property
    def chars(self) -> int:
        return sum(len(token) for answer in self.answers for token in answer)


def make_cases(answers: int, tokens: int) -> list[Case]:
    """Fenced answers, bare code, unicode/CRLF-heavy fenced answers, and one char per token."""

    def answer(index: int, *, fences: int, unicode: bool = False) -> list[str]:
        prompt = f"{TOPICS[index % len(TOPICS)]} (bench answer {index})"
        code = completion_tokens(prompt, count=tokens, unicode=unicode)
        return fenced_tokens(prompt, code, detect_language(prompt), blocks=fences)

    fenced = [answer(i, fences=2) for i in range(answers)]
    return [
        Case("fenced (prose, 2 blocks)", fenced),
        Case("bare code (no fence)", [answer(i, fences=0) for i in range(answers)]),
        Case(
            "fenced, unicode + CRLF/CR", [answer(i, fences=1, unicode=True) for i in range(answers)]
        ),
        Case(
            "fenced, 1 char per token", [list("".join(a)) for a in fenced[: max(1, answers // 4)]]
        ),
    ]


def extract(answers: list[list[str]]) -> int:
    """Every answer through its own extractor; the characters of code out."""
    total = 0
    for tokens in answers:
        extractor = CodeExtractor()
        for token in tokens:
            total += len(extractor.feed(token))
        total += len(extractor.finish())
    return total


def hand_on(answers: list[list[str]]) -> int:
    """The floor: each token handed to a list, as the writer queues it."""
    total = 0
    for tokens in answers:
        pending: list[str] = []
        for token in tokens:
            pending.append(token)
        total += len("".join(pending))
    return total


def best_cpu(run: Callable[[list[list[str]]], int], answers: list[list[str]], repeat: int) -> float:
    """The least CPU seconds of ``repeat`` runs."""
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        run(answers)
        best = min(best, time.process_time() - start)
    return best


def check(case: Case) -> None:
    """The streamed code of every answer is the rules applied to the whole answer."""
    for tokens in case.answers:
        extractor = CodeExtractor()
        code = "".join(extractor.feed(token) for token in tokens) + extractor.finish()
        assert code == extract_code("".join(tokens)).code, case.name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.extractor", description=__doc__.split("\n")[0])
    parser.add_argument("--answers", type=int, default=40, help="answers per case")
    parser.add_argument("--tokens", type=int, default=600, help="code tokens per answer")
    parser.add_argument("--repeat", type=int, default=7, help="runs per figure (best kept)")
    args = parser.parse_args(argv)
    cases = make_cases(args.answers, args.tokens)
    print(
        f"{'case':<28} {'tokens':>8} {'chars/tok':>9} {'extract µs/1k tok':>18} "
        f"{'floor µs/1k tok':>16} {'µs/1k chars':>12}"
    )
    for case in cases:
        check(case)
        cpu = best_cpu(extract, case.answers, args.repeat)
        floor = best_cpu(hand_on, case.answers, args.repeat)
        per_k = cpu / case.tokens * 1e9  # s per token × 1,000 tokens × 10⁶ µs
        print(
            f"{case.name:<28} {case.tokens:>8} {case.chars / case.tokens:>9.2f} "
            f"{per_k:>18.0f} {floor / case.tokens * 1e9:>16.0f} "
            f"{cpu / case.chars * 1e9:>12.0f}"
        )
    print(f"(CPU time, best of {args.repeat}; Python {sys.version.split()[0]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
