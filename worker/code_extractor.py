"""Code-only output: the first fenced code block of a chat model's answer, taken out while the
answer streams, the same under any split of the text into tokens.

Models asked for bare code still often answer with a line of prose, a fence with a language
tag, the code, a closing fence and a closing remark. The worker feeds every upstream token
through a :class:`CodeExtractor` before it writes anything (``worker/writer.py``), so every
viewer, every resume and the job's ``output`` see the same code; the upstream's text is kept
apart as the job's ``raw_output``. The rules, and the decision taken at each ambiguity, are
in docs/protocol.md ("Code-only output"); in short, following CommonMark's fenced code blocks:

- a line is an *opening fence* when it is up to 3 spaces, then 3 or more backticks or 3 or
  more tildes, then an info string (for backticks: one without a backtick);
- a fence opening on one of the first ``PREAMBLE_LINES + 1`` lines starts the code: the lines
  before it (the preamble) are dropped; a fence opening later is part of the code, and so is
  everything when no fence opens (the text is code as it came);
- the block ends at a *closing fence*: up to 3 spaces, then the opening's character at least
  as many times as it opened with, then only spaces or tabs; any other line is code, with
  up to as many leading spaces removed as the opening fence had; no closing fence = the
  block runs to the end;
- everything after the closing fence is dropped; the fenced blocks in it are counted
  (``blocks_dropped``);
- the first word of the info string, when it names a language the service knows (aliases
  mapped by :data:`LANGUAGE_ALIASES`), is the ``detected_language``.

Lines end with LF, CRLF or a lone CR, as in CommonMark (U+2028, U+0085 and the like are
ordinary characters). Text is held back only while it could still be a fence line (at most
the current line, at most until its line ending), and, before the first fence, while it could
still be the preamble of one (at most ``PREAMBLE_LINES`` lines plus the current one).
:func:`extract_code` is the same rules applied to a whole text at once, written line by line
on its own: the tests check that the streaming extractor matches it under any split.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Final

from service.contract.settings import DEFAULT_LANGUAGES

PREAMBLE_LINES: Final = 3
"""At most this many lines before the first opening fence are dropped as its preamble ("Here
is a binary search in Go:", a blank line): a fence must open on one of the first 4 lines to
start the code. Also the most complete lines held back before the first fence."""

LANGUAGE_ALIASES: Final[Mapping[str, str]] = {
    "py": "python",
    "py3": "python",
    "python3": "python",
    "python2": "python",
    "js": "javascript",
    "jsx": "javascript",
    "mjs": "javascript",
    "cjs": "javascript",
    "node": "javascript",
    "nodejs": "javascript",
    "ts": "typescript",
    "tsx": "typescript",
    "mts": "typescript",
    "cts": "typescript",
    "golang": "go",
    "rs": "rust",
    "h": "c",
    "c++": "cpp",
    "cc": "cpp",
    "cxx": "cpp",
    "hpp": "cpp",
    "hh": "cpp",
    "hxx": "cpp",
    "cs": "csharp",
    "c#": "csharp",
    "rb": "ruby",
    "kt": "kotlin",
    "kts": "kotlin",
    "sh": "shell",
    "bash": "shell",
    "zsh": "shell",
    "ksh": "shell",
    "shellscript": "shell",
    "postgresql": "sql",
    "postgres": "sql",
    "psql": "sql",
    "pgsql": "sql",
    "plpgsql": "sql",
    "mysql": "sql",
    "sqlite": "sql",
    "tsql": "sql",
    "plsql": "sql",
    "htm": "html",
    "xhtml": "html",
    "md": "markdown",
    "text": "plaintext",
    "txt": "plaintext",
    "plain": "plaintext",
}
"""Info-string words models write for a language, mapped to the page's (Monaco's) id."""

_LANGUAGE_WORD = re.compile(r"\{?\.?([\w+#.-]+)")
_LINE_END = re.compile(r"[\r\n]")

# The whole-text rules, line by line (a line's text without its line ending).
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")
_OPENING = re.compile(r"( {0,3})(`{3,}|~{3,})(.*)", re.DOTALL)
_CLOSING = re.compile(r" {0,3}(`{3,}|~{3,})[ \t]*")


def language_of(info: str, known: Collection[str]) -> str | None:
    """The language an info string names (its first word), as one of ``known``; else None.

    ``go``, ``golang``, ``{.go}`` and ``go title="x"`` all name ``go``."""
    match = _LANGUAGE_WORD.match(info.strip())
    if match is None:
        return None
    word = match.group(1).lower().rstrip(".")
    language = LANGUAGE_ALIASES.get(word, word)
    return language if language in known else None


@dataclass(frozen=True, slots=True)
class Extraction:
    """What the rules make of a whole answer."""

    code: str
    language: str | None  # the first block's language, when known
    blocks_dropped: int  # fenced blocks after the first one
    fenced: bool  # whether a fence opened in time (else ``code`` is the text as it came)


def _body(line: str) -> str:
    """A line without its line ending."""
    if line.endswith("\r\n"):
        return line[:-2]
    return line.rstrip("\r\n")


def _opening(line: str) -> tuple[int, str, int, str] | None:
    """(indent, fence character, fence length, info string) of an opening fence line."""
    match = _OPENING.fullmatch(_body(line))
    if match is None:
        return None
    indent, run, info = match.groups()
    if run[0] == "`" and "`" in info:
        return None
    return len(indent), run[0], len(run), info


def _closes(line: str, char: str, length: int) -> bool:
    match = _CLOSING.fullmatch(_body(line))
    return match is not None and match.group(1)[0] == char and len(match.group(1)) >= length


def _without_indent(line: str, indent: int) -> str:
    spaces = len(line) - len(line.lstrip(" "))
    return line[min(spaces, indent) :]


def extract_code(text: str, languages: Collection[str] = DEFAULT_LANGUAGES) -> Extraction:
    """The rules applied to a whole answer (the reference the streaming extractor matches)."""
    lines = _LINE.findall(text)
    for index, line in enumerate(lines[: PREAMBLE_LINES + 1]):
        opening = _opening(line)
        if opening is not None:
            rest = iter(lines[index + 1 :])
            break
    else:
        return Extraction(text, None, 0, fenced=False)
    indent, char, length, info = opening
    code: list[str] = []
    for line in rest:
        if _closes(line, char, length):
            break
        code.append(_without_indent(line, indent))
    dropped = 0
    inside: tuple[str, int] | None = None
    for line in rest:
        if inside is None:
            tail_opening = _opening(line)
            if tail_opening is not None:
                dropped += 1
                inside = tail_opening[1], tail_opening[2]
        elif _closes(line, *inside):
            inside = None
    return Extraction("".join(code), language_of(info, languages), dropped, fenced=True)


# Where the text is: before any fence, in the first block, after it, or known to be all code.
_PREAMBLE, _CODE, _TAIL, _ALL_CODE = range(4)
# What becomes of an LF right after a CR that ended a line (one CRLF line ending).
_LF_NONE, _LF_KEEP, _LF_DROP = range(3)


class CodeExtractor:
    """The rules applied to an answer as it streams: :meth:`feed` each token, then
    :meth:`finish`; their outputs joined are ``extract_code(answer).code``.

    ``language`` is set once the first block's opening fence line has ended (before any of
    its code is returned); ``blocks_dropped`` counts the blocks after the first, final after
    :meth:`finish`. One extractor serves one attempt: a retried attempt takes a new one.
    """

    __slots__ = (
        "_after_run",
        "_fence_char",
        "_fence_len",
        "_finished",
        "_holding",
        "_indent",
        "_languages",
        "_lf",
        "_line",
        "_lines",
        "_phase",
        "_preamble",
        "_run",
        "_run_char",
        "_strip",
        "blocks_dropped",
        "fenced",
        "language",
    )

    def __init__(self, languages: Collection[str] = DEFAULT_LANGUAGES) -> None:
        self._languages = frozenset(languages)
        self._phase = _PREAMBLE
        self._preamble: list[str] = []  # the preamble's text so far, held back
        self._lines = 0  # complete lines of the preamble
        self._lf = _LF_NONE
        # The current line while it could still be a fence line: its text and its shape.
        self._holding = True
        self._line = ""
        self._indent = 0
        self._run_char = ""
        self._run = 0
        self._after_run = False
        # The fence whose closing line is looked for ('' = looking for an opening one).
        self._fence_char = ""
        self._fence_len = 0
        self._strip = 0  # leading spaces removed from each line of the first block
        self._finished = False
        self.language: str | None = None
        self.blocks_dropped = 0
        self.fenced = False

    @property
    def held(self) -> str:
        """The text taken in but neither returned nor dropped yet."""
        return "".join(self._preamble) + self._line

    @property
    def in_preamble(self) -> bool:
        """Whether a fence may still open the first block (what came so far may be dropped as
        its preamble, so it may be held back: at most ``PREAMBLE_LINES`` lines and the
        current one). Otherwise at most the current line is held, while it could be a fence."""
        return self._phase == _PREAMBLE

    def feed(self, text: str) -> str:
        """Take the next piece of the answer; the code it releases now (maybe empty)."""
        if self._finished:
            raise RuntimeError("the extractor has finished")
        if self._phase == _ALL_CODE:
            return text
        if (
            self._phase == _CODE
            and not self._holding
            and self._lf == _LF_NONE
            and _LINE_END.search(text) is None
        ):
            return text  # the middle of a code line: the most common token
        out: list[str] = []
        position, end = 0, len(text)
        while position < end:
            if self._phase == _ALL_CODE:
                out.append(text[position:])
                break
            if self._lf != _LF_NONE:
                # The line before ended with CR: an LF now is the rest of that line ending.
                keep, self._lf = self._lf == _LF_KEEP, _LF_NONE
                if text[position] == "\n":
                    if keep:
                        self._route(out, "\n")
                    position += 1
                    continue
            if self._holding:
                position = self._hold(text, position, out)
                continue
            found = _LINE_END.search(text, position)
            if found is None:
                self._route(out, text[position:])
                break
            stop = found.start()
            self._route(out, text[position : stop + 1])
            self._line_ended(text[stop])
            position = stop + 1
        return "".join(out)

    def finish(self) -> str:
        """The answer ended: the code still held back, if the rules keep it."""
        if self._finished:
            return ""
        self._finished = True
        out: list[str] = []
        if self._phase == _ALL_CODE:
            return ""
        if self._holding and self._line:
            self._held_line_ended("", out)  # the last line, without a line ending
        if self._phase == _PREAMBLE:
            # No fence opened: the text is code as it came.
            out.extend(self._preamble)
            self._preamble = []
        return "".join(out)

    # -- one line at a time ----------------------------------------------------------------

    def _hold(self, text: str, position: int, out: list[str]) -> int:
        """Advance through the current line while it could still be a fence line."""
        start = position
        end = len(text)
        while position < end:
            char = text[position]
            if char == "\n" or char == "\r":
                self._line += text[start:position]
                self._held_line_ended(char, out)
                return position + 1
            if not self._step(char):
                self._line += text[start:position]
                self._release_line(out)
                return position  # this character and the rest of the line pass
            position += 1
        self._line += text[start:end]
        return end

    def _step(self, char: str) -> bool:
        """Whether the line, with ``char`` added, could still be the fence line looked for."""
        if self._after_run:
            if self._fence_char:
                return char == " " or char == "\t"  # a closing fence: only spaces or tabs
            return not (char == "`" and self._run_char == "`")  # an opening fence's info
        if self._run == 0:
            if char == " ":
                self._indent += 1
                return self._indent <= 3
            if char == "`" or char == "~":
                if self._fence_char and char != self._fence_char:
                    return False
                self._run_char = char
                self._run = 1
                return True
            return False
        if char == self._run_char:
            self._run += 1
            return True
        if self._run < (self._fence_len if self._fence_char else 3):
            return False
        self._after_run = True
        return self._step(char)

    def _is_fence(self) -> bool:
        """Whether the held line, as it ended, is the fence line looked for."""
        return self._run >= (self._fence_len if self._fence_char else 3)

    def _release_line(self, out: list[str]) -> None:
        """The held line cannot be a fence line: let its text go where the phase sends it."""
        held, self._line = self._line, ""
        self._holding = False
        if self._phase == _PREAMBLE and self._lines == PREAMBLE_LINES:
            # The last line a fence could open on is not one: the whole text is code.
            out.extend(self._preamble)
            out.append(held)
            self._preamble = []
            self._phase = _ALL_CODE
            return
        if self._phase == _CODE and self._strip:
            held = held[min(self._strip, self._indent) :]
        self._route(out, held)

    def _held_line_ended(self, ending: str, out: list[str]) -> None:
        """A line held as a possible fence line ended (``ending``: its CR or LF, or '')."""
        line = self._line
        fence = self._is_fence()
        lf = _LF_KEEP
        if self._phase == _PREAMBLE:
            if fence:
                self._preamble = []
                self._phase = _CODE
                self._fence_char, self._fence_len = self._run_char, self._run
                self._strip = self._indent
                self.fenced = True
                self.language = language_of(line[self._indent + self._run :], self._languages)
                lf = _LF_DROP
            else:
                self._preamble.append(line + ending)
                self._lines += 1
                if self._lines > PREAMBLE_LINES:
                    out.extend(self._preamble)
                    self._preamble = []
                    self._phase = _ALL_CODE
        elif self._phase == _CODE:
            if fence:
                self._phase = _TAIL
                self._fence_char = ""
                lf = _LF_DROP
            else:
                out.append(line[min(self._strip, self._indent) :] + ending)
        else:  # the tail: dropped, its blocks counted
            lf = _LF_DROP
            if fence and not self._fence_char:
                self.blocks_dropped += 1
                self._fence_char, self._fence_len = self._run_char, self._run
            elif fence:
                self._fence_char = ""
        self._new_line(lf if ending == "\r" else _LF_NONE)

    def _line_ended(self, ending: str) -> None:
        """A line known not to be a fence line ended (its text went where it belongs)."""
        if self._phase == _PREAMBLE:
            self._lines += 1
        self._new_line(_LF_KEEP if ending == "\r" else _LF_NONE)

    def _new_line(self, lf: int) -> None:
        self._lf = lf
        self._holding = True
        self._line = ""
        self._indent = 0
        self._run_char = ""
        self._run = 0
        self._after_run = False

    def _route(self, out: list[str], text: str) -> None:
        """Text of a line that is not a fence line, where the phase sends it."""
        if self._phase == _PREAMBLE:
            self._preamble.append(text)
        elif self._phase != _TAIL:
            out.append(text)
