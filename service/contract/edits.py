"""An edit's target: the document a job's text is meant for, and where in it (``target`` of
``POST /v1/jobs``, docs/protocol.md "Edits").

The page submits the whole document as it was at submit (``base``), so a share-link viewer
sees the same edit land, and the worker builds the prompt from the selection and its
surroundings (``worker/prompts.py``). Positions are Monaco's: lines and columns count from 1,
columns in UTF-16 code units, lines end at CRLF, CR or LF (and nothing else: U+2028, U+0085
and friends stay inside their line, as on the page).
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, model_validator

DOCUMENT_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


class TextRange(BaseModel):
    """A range of the document, as Monaco's ``IRange`` (1-based lines, UTF-16 columns)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start_line: int = Field(ge=1)
    start_column: int = Field(ge=1)
    end_line: int = Field(ge=1)
    end_column: int = Field(ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> TextRange:
        if (self.end_line, self.end_column) < (self.start_line, self.start_column):
            raise ValueError("the range ends before it starts")
        return self

    @property
    def empty(self) -> bool:
        """A cursor, not a selection: the job's text is inserted there."""
        return (self.start_line, self.start_column) == (self.end_line, self.end_column)


class EditTarget(BaseModel):
    """Where a job's text goes: ``range`` of the document ``document_id`` at ``version``,
    whose whole text then was ``base`` (bounded only by ``MAX_BODY_BYTES``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    document_id: str = Field(pattern=DOCUMENT_ID_PATTERN)
    # Monaco's getAlternativeVersionId() at submit: the page's "has it changed since?".
    version: int = Field(ge=0)
    range: TextRange
    base: str
    # The document's file name, for the prompt and for a viewer's title; optional.
    name: str | None = Field(default=None, min_length=1, max_length=255)

    @model_validator(mode="after")
    def _range_inside_base(self) -> EditTarget:
        lines = split_lines(self.base)
        for line, column in (
            (self.range.start_line, self.range.start_column),
            (self.range.end_line, self.range.end_column),
        ):
            if line > len(lines):
                raise ValueError(f"line {line} is past the document's {len(lines)} lines")
            if column > utf16_length(lines[line - 1]) + 1:
                raise ValueError(f"column {column} is past the end of line {line}")
            _index_at(lines[line - 1], column)  # not inside a surrogate pair
        return self

    def parts(self) -> tuple[str, str, str]:
        """The base cut at the range: (text before, the selected text, text after)."""
        start = self._offset(self.range.start_line, self.range.start_column)
        end = self._offset(self.range.end_line, self.range.end_column)
        return self.base[:start], self.base[start:end], self.base[end:]

    @property
    def selected(self) -> str:
        """The text the job's answer replaces (empty for a cursor)."""
        return self.parts()[1]

    def _offset(self, line: int, column: int) -> int:
        """The position's index into ``base`` (code points)."""
        start, end, _ = _line_spans(self.base)[line - 1]
        return start + _index_at(self.base[start:end], column)


def split_lines(text: str) -> list[str]:
    """The lines of ``text`` as Monaco's model holds them (without their line ends)."""
    return _LINE_BREAK.split(text)


def utf16_length(text: str) -> int:
    """Length in UTF-16 code units, the unit of Monaco's columns."""
    return len(text) + sum(1 for char in text if ord(char) > 0xFFFF)


def _index_at(line: str, column: int) -> int:
    """The code-point index of a 1-based UTF-16 ``column`` of ``line``."""
    units = column - 1
    for index, char in enumerate(line):
        if units == 0:
            return index
        units -= 2 if ord(char) > 0xFFFF else 1
        if units < 0:
            raise ValueError("a column falls inside a surrogate pair")
    if units == 0:
        return len(line)
    raise ValueError("a column is past the end of its line")


def _line_spans(text: str) -> list[tuple[int, int, int]]:
    """Each line's (start, end without its line end, start of the next line)."""
    spans = []
    start = 0
    for match in _LINE_BREAK.finditer(text):
        spans.append((start, match.start(), match.end()))
        start = match.end()
    spans.append((start, len(text), len(text)))
    return spans
