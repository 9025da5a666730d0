"""Deterministic, plausible source code as a stream of tokens.

The text depends only on (prompt without ``#sim`` lines, seed, unicode, nul), and a
longer completion extends a shorter one, so a retried request repeats the text. A ``whole``
completion ends at a natural end of the program (after a function), as a model's answer does.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Iterator
from itertools import islice
from string import Template

from simulator.languages import LANGUAGES, TEMPLATE_INDENT, Language, detect_language
from simulator.tokenizer import split_tokens

# fmt: off
_VERBS = ("parse", "load", "merge", "render", "flush", "resolve", "encode", "fetch", "update",
          "split", "count", "scan", "build", "apply", "check", "sum")
_NOUNS = ("config", "buffer", "token", "offset", "record", "stream", "cache", "index",
          "payload", "window", "chunk", "cursor", "batch", "limit", "score", "node")
_LOCALS = ("total", "result", "acc", "count", "value", "best", "state")
_OPS = ("+", "-", "*")
_STOPWORDS = frozenset(
    ("that", "this", "with", "from", "into", "function", "write", "code", "which", "should",
     "return", "when", "then", "make", "using", "there", "their", "about", "only", "also",
     "some", "each", "list", "like", "simple", "please", "given", "program", "script"),
) | {word for language in LANGUAGES for word in language.words}
# fmt: on
_PROMPT_WORD = re.compile(r"[a-z]{4,12}")

# Text that breaks naive stream handling: multi-byte UTF-8 (combining marks, a ZWJ
# emoji sequence split across tokens), Unicode line/paragraph separators and NEL,
# CRLF split between tokens, lone CR, tabs, quotes, backslashes, a BOM mid-line,
# form feed, and SSE field lookalikes at line starts.
# fmt: off
_STRESS_LINES: tuple[tuple[str, ...], ...] = (
    ("#", " café", " naïve", " —", " 中", "文", " 注", "释", " 🚀", " 👩", "\u200d", "💻",
     "\r", "\n"),
    ("#", " e", "\u0301", " tab", "\t", "|", "\t", "end", " nel", "\u0085", "ls", "\u2028",
     "ps", "\u2029", "bom", "\ufeff", "ff", "\x0c", "\r\n"),
    ("#", " lone", " carri", "age", " return", "\r"),
    ("#", ' "', "double", '"', " '", "single", "'", " `", "back", "tick", "`", " \\", "n",
     " \\", "\\", " C", ":\\", "path", "\\", "to", "\n"),
    ("<open>", "\n"),
    ("data", ":", " {", '"', "fake", '":', " true", "}", "\n\n"),
    ("id", ":", " x", "\n"),
    ("event", ":", " done", "\n"),
    (":", " keep", "alive", "\r\n"),
    ("retry", ":", " 0", "\n"),
    ("data", ":", " [", "DONE", "]", "\n\n"),
    ("<close>", "\n"),
)
# fmt: on
_UNICODE_COMMENTS = (
    "résumé naïve café — ñandú “quoted” ‘single’",
    "中文注释：计算总和，然后返回结果",
    "日本語 한국어 Ελληνικά русский עברית العربية",
    "🚀 ✨ 👨\u200d👩\u200d👧\u200d👦 👩🏽\u200d💻 🏳️\u200d🌈",
    "tab\tseparated\tcolumns",
    "quotes \"double\" 'single' `back` \\ \\\\ \\n",
    "data: [DONE]",
    "id: x event: done",
    "line\u2028separator then\u0085next line",
)
_NUL_EVERY = 50


def completion_tokens(
    prompt: str,
    *,
    count: int,
    seed: str = "",
    unicode: bool = False,
    nul: bool = False,
    whole: bool = False,
) -> list[str]:
    """The first ``count`` tokens of the completion of ``prompt``; with ``whole``, the
    shortest whole program of at least ``count`` tokens (it ends after a function).

    ``unicode`` opens with text that stresses downstream fidelity and mixes more of it
    in; ``nul`` adds NUL characters (never present otherwise).
    """
    rng = random.Random(_seed_int(prompt, seed, unicode=unicode, nul=nul))
    language = detect_language(prompt)
    stream = _tokens(language, rng, _nouns_of(prompt), unicode=unicode)
    if nul:
        stream = _with_nuls(stream)
    if not whole:
        return list(islice((token for token in stream if token is not None), count))
    tokens: list[str] = []
    for token in stream:
        if token is not None:
            tokens.append(token)
        elif len(tokens) >= count:
            break
    return tokens if count else []


def _seed_int(prompt: str, seed: str, *, unicode: bool, nul: bool) -> int:
    material = f"{seed}\x00{int(unicode)}{int(nul)}\x00{prompt}".encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.sha256(material).digest()[:8], "big")


def _nouns_of(prompt: str) -> tuple[str, ...]:
    """Words of the prompt that can name things, so the code looks on topic."""
    words = dict.fromkeys(w for w in _PROMPT_WORD.findall(prompt.lower()) if w not in _STOPWORDS)
    return (*_NOUNS, *list(words)[:8])


def _tokens(
    language: Language, rng: random.Random, nouns: tuple[str, ...], *, unicode: bool
) -> Iterator[str | None]:
    """The tokens, forever, with None at each natural end of the program."""
    if unicode:
        yield from _stress_preamble(language)
    for line in _lines(language, rng, nouns, unicode=unicode):
        if line is None:
            yield None
        else:
            yield from split_tokens(line + _line_end(rng, unicode=unicode), rng)


def _stress_preamble(language: Language) -> Iterator[str]:
    for line in _STRESS_LINES:
        for token in line:
            if token == "#":
                yield language.line_comment
            elif token == "<open>":
                yield language.block_open
            elif token == "<close>":
                yield language.block_close
            else:
                yield token


def _line_end(rng: random.Random, *, unicode: bool) -> str:
    if not unicode:
        return "\n"
    return rng.choices(("\n", "\r\n", "\r"), weights=(6, 3, 1))[0]


def _with_nuls(tokens: Iterator[str | None]) -> Iterator[str | None]:
    index = 0
    for token in tokens:
        yield token
        if token is None:
            continue
        if index % _NUL_EVERY == 2:
            yield "\x00"
        index += 1


def _lines(
    language: Language, rng: random.Random, nouns: tuple[str, ...], *, unicode: bool
) -> Iterator[str | None]:
    """Source lines without line ends, forever: a header, then one function after another;
    None after each function (where the program may end)."""
    yield from language.header
    names: list[str] = []
    while True:
        name = _identifier(language, rng.choice(_VERBS), rng.choice(nouns))
        yield from _function(language, rng, nouns, name, names, unicode=unicode)
        names.append(name)
        yield None
        yield ""


def _function(
    language: Language,
    rng: random.Random,
    nouns: tuple[str, ...],
    name: str,
    earlier: list[str],
    *,
    unicode: bool,
) -> Iterator[str]:
    a, b = rng.sample(nouns, 2)
    params = ", ".join(Template(language.param).substitute(p=p) for p in (a, b))
    slots = {
        "name": name,
        "params": params,
        "a": a,
        "b": b,
        "v": rng.choice(_LOCALS),
        "f": rng.choice(earlier) if earlier else name,
        "op": rng.choice(_OPS),
    }
    yield Template(language.func_open).substitute(slots)
    body = [language.assign, *rng.sample(language.statements, rng.randint(2, 4)), language.ret]
    for statement in body:
        if unicode and rng.random() < 0.3:
            yield f"{language.indent}{language.line_comment} {rng.choice(_UNICODE_COMMENTS)}"
        filled = Template(statement).substitute(
            slots,
            n=rng.randint(2, 64),
            m=rng.randint(100, 4096),
            s=f"{rng.choice(_VERBS)} {rng.choice(nouns)}",
            c=f"{rng.choice(_VERBS)} the {rng.choice(nouns)} before the {rng.choice(nouns)}",
        )
        for line in filled.split("\n"):
            yield _indent(language, line, level=1)
    if language.func_close is not None:
        yield language.func_close


def _indent(language: Language, line: str, *, level: int) -> str:
    stripped = line.lstrip(" ")
    depth = level + (len(line) - len(stripped)) // len(TEMPLATE_INDENT)
    return language.indent * depth + stripped


def _identifier(language: Language, verb: str, noun: str) -> str:
    if language.naming == "snake":
        return f"{verb}_{noun}"
    return f"{verb}{noun.capitalize()}"
