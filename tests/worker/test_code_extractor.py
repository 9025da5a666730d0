"""The code extractor: each rule of docs/protocol.md's "Code-only output", streamed whole, one
character at a time and split at every position; a property test over random answers and
random splits; and the fence rules checked against a CommonMark parser."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from worker.code_extractor import PREAMBLE_LINES, CodeExtractor, Extraction, extract_code

LINE_END = re.compile(r"\r\n|\r|\n")


@dataclass
class Streamed:
    """What the extractor returned for one split of an answer."""

    code: str
    language: str | None
    blocks_dropped: int
    fenced: bool


def stream(
    pieces: list[str],
    languages: tuple[str, ...] | None = None,
    expected: Extraction | None = None,
) -> Streamed:
    """Feed ``pieces`` one by one, checking what is held back after each; then finish."""
    extractor = CodeExtractor() if languages is None else CodeExtractor(languages)
    taken = ""
    out: list[str] = []
    for piece in pieces:
        released = extractor.feed(piece)
        if released and expected is not None and expected.fenced:
            # The block's language is known before any of its code is returned.
            assert extractor.language == expected.language
        out.append(released)
        taken += piece
        check_held(extractor, taken)
    out.append(extractor.finish())
    return Streamed("".join(out), extractor.language, extractor.blocks_dropped, extractor.fenced)


def check_held(extractor: CodeExtractor, taken: str) -> None:
    """Held text is the end of what came, and at most one line once the preamble is over."""
    held = extractor.held
    assert taken.endswith(held)
    if extractor.in_preamble:
        assert len(LINE_END.findall(held)) <= PREAMBLE_LINES
    else:
        assert LINE_END.search(held) is None, f"more than one line held: {held!r}"


def every_split(text: str) -> list[list[str]]:
    """The text whole, one character at a time, and cut in two at every position."""
    splits = [[text], list(text)]
    splits += [[text[:cut], text[cut:]] for cut in range(1, len(text))]
    return splits


def assert_extracts(text: str, code: str, language: str | None = None, dropped: int = 0) -> None:
    """The rules give ``code`` for ``text``, streamed however it is split."""
    whole = extract_code(text)
    assert (whole.code, whole.language, whole.blocks_dropped) == (code, language, dropped)
    for pieces in every_split(text):
        got = stream(pieces)
        assert (got.code, got.language, got.blocks_dropped) == (code, language, dropped), pieces


# --- the rules, one by one ---------------------------------------------------------------


def test_prose_fences_and_remark_leave_the_code() -> None:
    assert_extracts(
        "Here is a binary search in Go:\n\n```go\nfunc f() int {\n\treturn 1\n}\n```\n\n"
        "Hope this helps.",
        "func f() int {\n\treturn 1\n}\n",
        "go",
    )


def test_no_fence_is_code_as_it_came() -> None:
    text = "def f():\n    return '``'\n\n# the end, no final newline"
    assert_extracts(text, text)
    assert extract_code(text) == Extraction(text, None, 0, fenced=False)


def test_a_fence_opens_on_the_first_four_lines_only() -> None:
    preamble = "".join(f"line {n}\n" for n in range(PREAMBLE_LINES))
    assert_extracts(preamble + "```py\nx = 1\n```\n", "x = 1\n", "python")
    late = preamble + "one more\n```py\nx = 1\n```\n"
    assert_extracts(late, late)  # a fence after the window is part of the code (a docstring)


def test_blank_lines_count_as_preamble_lines() -> None:
    assert_extracts("\n\n\n```\nx\n```\n", "x\n")
    assert_extracts("\n\n\n\n```\nx\n```\n", "\n\n\n\n```\nx\n```\n")


def test_text_after_the_closing_fence_is_dropped_and_further_blocks_counted() -> None:
    text = (
        "Sure:\n```python\nprint(1)\n```\nUsage:\n```sh\npython x.py\n```\n~~~\nmore\n~~~\n"
        "Bye.\n```\nunclosed at the end"
    )
    assert_extracts(text, "print(1)\n", "python", dropped=3)


@pytest.mark.parametrize(
    "line",
    [
        "```python",  # an info string: not a closing fence
        "``",  # too short
        "    ```",  # four spaces of indentation: code
        "\t```",  # a tab is four columns
        "~~~",  # the other fence character
        "s = '```'",  # not at the start of the line
        "``` x",  # text after the run
        "```\t`",
    ],
)
def test_a_fence_like_line_inside_the_code_does_not_close_it(line: str) -> None:
    assert_extracts(f"```\na\n{line}\nb\n```\nafter", f"a\n{line}\nb\n")


def test_a_shorter_run_does_not_close_a_longer_fence_and_a_longer_one_does() -> None:
    assert_extracts("````md\n```\ninner\n```\n`````\nafter", "```\ninner\n```\n", "markdown")
    assert_extracts("~~~\n~~\n~~~~~~\nafter", "~~\n")


@pytest.mark.parametrize("closing", ["```", "   ```", "```   ", "```\t \t", "````"])
def test_closing_fences_by_commonmark(closing: str) -> None:
    assert_extracts(f"```\ncode\n{closing}\ndropped", "code\n")


@pytest.mark.parametrize(
    "line",
    ["```js`", "``", "    ```", "\t```", "`` `", "~~ ~"],
)
def test_lines_that_are_not_opening_fences(line: str) -> None:
    text = f"{line}\ncode\n```\n"
    # Not a fence, so the first fence is the one on line 3: the two lines before are dropped.
    assert_extracts(text, "")


def test_a_tilde_fence_may_name_anything_and_ignores_backticks() -> None:
    assert_extracts("~~~ ruby `x`\n```\nputs 1\n~~~", "```\nputs 1\n", "ruby")


def test_an_indented_fence_removes_as_much_indentation_from_its_lines() -> None:
    assert_extracts(
        "1. Steps:\n\n   ```py\n   def f():\n       pass\n  x\n y\n\n   ```\n",
        "def f():\n    pass\nx\ny\n\n",
        "python",
    )


def test_an_unclosed_block_runs_to_the_end() -> None:
    assert_extracts("Here:\n```rust\nfn main() {\n    let", "fn main() {\n    let", "rust")
    assert_extracts("Here:\n```rust", "", "rust")


@pytest.mark.parametrize("end", ["\n", "\r\n", "\r"], ids=["lf", "crlf", "cr"])
def test_line_endings_lf_crlf_and_a_lone_cr(end: str) -> None:
    text = end.join(["Intro:", "```go", "a := 1", "", "```", "bye"])
    assert_extracts(text, f"a := 1{end}{end}", "go")


def test_unicode_line_separators_are_not_line_endings() -> None:
    assert_extracts("x\u2028```\u0085y\n", "x\u2028```\u0085y\n")
    assert_extracts("```\u2028\na\n```", "a\n")  # U+2028 is in the info string


def test_a_crlf_split_between_tokens_is_one_line_ending() -> None:
    text = "Hi\r\n```py\r\nx\r\n```\r\nbye\r\n"
    assert stream(["Hi\r", "\n```py\r", "\nx\r", "\n```\r", "\nbye\r", "\n"]).code == "x\r\n"
    assert_extracts(text, "x\r\n", "python")


@pytest.mark.parametrize(
    ("info", "language"),
    [
        ("go", "go"),
        ("golang", "go"),
        ("py", "python"),
        ("Python3", "python"),
        ("c++", "cpp"),
        ("C#", "csharp"),
        ("ts", "typescript"),
        ("bash", "shell"),
        ("{.python}", "python"),
        ("python title='x.py'", "python"),
        ("python:main.py", "python"),
        (" go ", "go"),
        ("brainfuck", None),
        ("", None),
    ],
)
def test_the_info_string_names_the_language(info: str, language: str | None) -> None:
    assert_extracts(f"```{info}\nx\n```", "x\n", language)


def test_a_language_outside_the_allowed_ones_is_not_detected() -> None:
    assert stream(["```go\nx\n```"], languages=("python",)).language is None
    assert stream(["```yaml\nx\n```"], languages=("python", "yaml")).language == "yaml"


def test_the_language_is_known_before_any_code_and_code_is_not_held() -> None:
    extractor = CodeExtractor()
    assert extractor.feed("Here:\n\n```g") == ""
    assert extractor.language is None
    assert extractor.feed("o\n") == ""
    assert extractor.language == "go"
    assert extractor.feed("x := 1") == "x := 1"  # a line that cannot be a fence passes at once
    assert extractor.feed("\n  ``") == "\n"  # maybe a closing fence: held
    assert extractor.held == "  ``"
    assert extractor.feed("`") == ""
    assert extractor.feed(" y") == "  ``` y"  # not one after all: released whole
    assert extractor.feed("\n```") == "\n"
    assert extractor.finish() == ""  # the closing fence at the end: dropped
    assert extractor.blocks_dropped == 0


def test_the_end_releases_a_held_line_that_is_not_a_fence() -> None:
    extractor = CodeExtractor()
    assert extractor.feed("```\nx\n``") == "x\n"
    assert extractor.finish() == "``"


def test_the_end_of_a_text_without_fence_releases_the_held_preamble() -> None:
    extractor = CodeExtractor()
    assert extractor.feed("a\nb\n") == ""
    assert extractor.in_preamble
    assert extractor.finish() == "a\nb\n"


def test_the_preamble_is_released_as_soon_as_the_last_chance_for_a_fence_passes() -> None:
    extractor = CodeExtractor()
    lines = "".join(f"{n}\n" for n in range(PREAMBLE_LINES))
    assert extractor.feed(lines) == ""
    assert extractor.feed("x") == lines + "x"  # line 4 cannot be a fence any more
    assert not extractor.in_preamble
    assert extractor.feed("\n```py\n") == "\n```py\n"


def test_empty_pieces_and_an_empty_answer() -> None:
    assert stream(["", "", ""]).code == ""
    assert stream(["```", "", "\n", "", "x", ""]).code == "x"


def test_feeding_after_the_end_is_an_error() -> None:
    extractor = CodeExtractor()
    extractor.finish()
    with pytest.raises(RuntimeError):
        extractor.feed("x")


# --- any answer, any split ---------------------------------------------------------------

_ENDS = st.sampled_from(["\n", "\r\n", "\r"])
_PROSE = st.sampled_from(
    ["Here is the code:", "Sure!", "", "Use `x` here:", "  indented prose", "é 🚀 中文"]
)
_FENCE = st.builds(
    lambda indent, char, length, info: " " * indent + char * length + info,
    st.integers(0, 4),
    st.sampled_from("`~"),
    st.integers(2, 5),
    st.sampled_from(["", "go", "py", " python ", "c++", "{.rust}", "x`y", "  ", "\t"]),
)
_CODE = st.sampled_from(
    [
        "x = 1",
        "",
        "    ```",
        "``",
        "s = '```'",
        "```python",
        "~~~",
        " ```",
        "````",
        "```  ",
        "\ty",
        "  z",
        "a\u2028b",
        "🚀",
        "` `",
    ]
)


@st.composite
def answers(draw: st.DrawFn) -> str:
    """Answers shaped like a model's (preamble, fenced block, tail) or lines of anything."""
    if draw(st.booleans()):
        lines = draw(st.lists(st.one_of(_PROSE, _FENCE, _CODE), max_size=12))
    else:
        lines = [
            *draw(st.lists(_PROSE, max_size=PREAMBLE_LINES + 1)),
            draw(_FENCE),
            *draw(st.lists(st.one_of(_CODE, _FENCE), max_size=6)),
            *draw(st.lists(st.one_of(_PROSE, _FENCE, _CODE), max_size=6)),
        ]
    text = "".join(line + draw(_ENDS) for line in lines)
    if draw(st.booleans()):
        text = text.rstrip("\r\n")  # the last line without a line ending
    return text


_PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_PROPERTY
@given(text=answers(), data=st.data())
def test_streamed_code_equals_the_rules_on_the_whole_text_under_any_split(
    text: str, data: st.DataObject
) -> None:
    expected = extract_code(text)
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(text) - 1)), max_size=30)))
    random_split = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    for pieces in [random_split, *every_split(text)]:
        got = stream(pieces, expected=expected)
        assert got.code == expected.code, pieces
        assert (got.language, got.blocks_dropped, got.fenced) == (
            expected.language,
            expected.blocks_dropped,
            expected.fenced,
        )


def test_the_language_comes_before_the_first_code() -> None:
    text = "Sure:\n```go\nx\n```\n"
    for pieces in every_split(text):
        extractor = CodeExtractor()
        for piece in pieces:
            if extractor.feed(piece):
                assert extractor.language == "go"


# --- the fence rules against a CommonMark parser -----------------------------------------


@_PROPERTY
@given(
    opening=_FENCE.filter(lambda line: extract_code(line + "\n").fenced),
    body=st.lists(_CODE.filter(lambda line: "\t" not in line), max_size=8),
    closing=st.one_of(st.none(), _FENCE),
)
def test_the_first_block_is_the_one_commonmark_parses(
    opening: str, body: list[str], closing: str | None
) -> None:
    text = "\n".join([opening, *body, *([closing] if closing is not None else [])]) + "\n"
    first = next(token for token in MarkdownIt("commonmark").parse(text) if token.type == "fence")
    assert extract_code(text).code == first.content
