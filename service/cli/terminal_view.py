"""How ``tokenrelay watch`` shows a job: plain bytes into a pipe, live highlighted code on a
terminal, and a status line on a terminal's stderr.

Neither a pipe nor a terminal's scrollback can take text back, so both views write through
:class:`~service.contract.append_only.AppendOnlyText`: a retried attempt that repeats the text
already
shown continues seamlessly. One that says something else is, on a terminal, shown after a
separator line (the screen ends with exactly the final text); into a pipe it cannot be
repaired, so the pipe view stops writing and reports ``diverged``.
"""

from __future__ import annotations

import math
import shutil
import time
import unicodedata
from dataclasses import dataclass
from typing import BinaryIO, Protocol, TextIO

from service.cli.code_highlight import Highlighter
from service.contract.append_only import AppendOnlyText, Diverged

REDRAW_SECONDS = 0.05
STATUS_SECONDS = 0.1
_DIM, _RESET = "\x1b[2m", "\x1b[0m"


@dataclass
class Progress:
    """What the status line shows."""

    status: str = "connecting"
    attempt: int = 0
    ttft_ms: int | None = None
    viewers: int | None = None
    chunks: int = 0
    chars: int = 0
    first_chunk_at: float | None = None
    last_chunk_at: float | None = None
    note: str | None = None  # "reconnecting: …"

    def chunk(self, text: str) -> None:
        """Count one token event."""
        now = time.monotonic()
        if self.first_chunk_at is None:
            self.first_chunk_at = now
        self.last_chunk_at = now
        self.chunks += 1
        self.chars += len(text)

    def line(self) -> str:
        """The status line's text."""
        parts = [f"● {self.status}"]
        if self.attempt > 1:
            parts.append(f"attempt {self.attempt}")
        if self.ttft_ms is not None:
            parts.append(f"TTFT {self.ttft_ms} ms")
        if self.first_chunk_at is not None and self.last_chunk_at is not None:
            span = max(self.last_chunk_at - self.first_chunk_at, 0.001)
            parts.append(f"{self.chunks / span:.0f} chunks/s" if self.chunks > 1 else "1 chunk")
        parts.append(f"{self.chars:,} chars")
        if self.viewers is not None:
            parts.append(f"{self.viewers} viewer{'s' if self.viewers != 1 else ''}")
        if self.note:
            parts.append(self.note)
        return " · ".join(parts)


class View(Protocol):
    """Where a watched job's text goes."""

    diverged: bool

    def show(self, text: str) -> None:
        """Append token text of the current attempt."""

    def reset(self) -> None:
        """A new attempt starts."""

    def refresh(self, progress: Progress, *, force: bool = False) -> None:
        """Redraw the status line (throttled unless ``force``)."""

    def close(self, progress: Progress, *, done: bool) -> None:
        """The watch ends (``done``: the job finished normally)."""


def display_width(text: str) -> int:
    """Terminal columns of ``text`` (wide East Asian characters take two, marks none)."""
    width = 0
    for char in text.expandtabs(8):
        if unicodedata.combining(char):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


def _columns() -> int:
    return max(20, shutil.get_terminal_size((100, 24)).columns)


class _StatusLine:
    """A one-line status on a terminal's stderr, redrawn in place."""

    def __init__(self, err: TextIO | None) -> None:
        self.err = err
        self._drawn_at = 0.0

    def due(self, force: bool) -> bool:
        return self.err is not None and (
            force or time.monotonic() - self._drawn_at >= STATUS_SECONDS
        )

    def text(self, progress: Progress) -> str:
        self._drawn_at = time.monotonic()
        line = progress.line()
        limit = _columns() - 1
        while display_width(line) > limit:
            line = line[:-2] + "…"
        return f"{_DIM}{line}{_RESET}"


class PipeView:
    """Exact bytes (UTF-8) into a pipe or file; the status line, if any, on stderr."""

    def __init__(self, out: BinaryIO, err: TextIO | None) -> None:
        self._out = out
        self._text = AppendOnlyText()
        self._status = _StatusLine(err)
        self.diverged = False

    def show(self, text: str) -> None:
        if self.diverged:
            return
        try:
            piece = self._text.token(text)
        except Diverged:
            self.diverged = True
            return
        if piece:
            self._out.write(piece.encode("utf-8"))
            self._out.flush()

    def reset(self) -> None:
        self._text.reset()

    def refresh(self, progress: Progress, *, force: bool = False) -> None:
        if self._status.due(force) and self._status.err is not None:
            self._status.err.write("\r\x1b[2K" + self._status.text(progress))
            self._status.err.flush()

    def close(self, progress: Progress, *, done: bool) -> None:
        if done and not self.diverged:
            try:
                self._text.finish()
            except Diverged:
                self.diverged = True
        err = self._status.err
        if err is not None:
            err.write("\r\x1b[2K" + self._status.text(progress) + "\n")
            err.flush()


class TerminalView:
    """Live code on a terminal: finished lines highlighted once, the line being written and
    the status line redrawn below them."""

    def __init__(self, out: BinaryIO, err: TextIO | None, highlighter: Highlighter) -> None:
        self._out = out
        self._status = _StatusLine(err)
        self._highlighter = highlighter
        self._text = AppendOnlyText()
        self._shown: list[str] = []  # the text on screen since the last separator
        self._printed_lines = 0  # finished lines of _shown already written for good
        self._bottom_rows = 0  # rows of the redrawn area (line being written + status)
        self._drawn_at = 0.0
        self._progress = Progress()
        self.diverged = False  # a terminal can show a retry; it never ends diverged

    def show(self, text: str) -> None:
        try:
            piece = self._text.token(text)
        except Diverged as exc:
            self._restart(exc.attempt_text)
            return
        if piece:
            self._shown.append(piece)
            self._draw(force=False)

    def reset(self) -> None:
        self._text.reset()

    def refresh(self, progress: Progress, *, force: bool = False) -> None:
        self._progress = progress
        if self._status.due(force):
            self._draw(force=True)

    def close(self, progress: Progress, *, done: bool) -> None:
        self._progress = progress
        if done:
            try:
                self._text.finish()
            except Diverged as exc:
                self._restart(exc.attempt_text)
        self._draw(force=True, final=True)

    def _restart(self, attempt_text: str) -> None:
        """A retried attempt differs from what is on screen: a separator, then its text."""
        self._draw(force=True, final=True)
        notice = "── restarted: the retried attempt wrote different text ──"[: _columns() - 1]
        self._out.write(f"{_DIM}{notice}{_RESET}\n".encode())
        self._text = AppendOnlyText()
        self._text.token(attempt_text)
        self._shown = [attempt_text]
        self._printed_lines = 0
        self._bottom_rows = 0
        self._draw(force=True)

    def _draw(self, *, force: bool, final: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._drawn_at < REDRAW_SECONDS:
            return
        self._drawn_at = now
        raw = "".join(self._shown)
        self._shown = [raw]
        text = _for_screen(raw[:-1] if raw.endswith("\r") and not final else raw)
        lines = self._highlighter.lines(text)
        finished = text.count("\n")
        out = [self._clear_bottom()]
        for line in lines[self._printed_lines : finished]:
            out.append(line + "\n")
        self._printed_lines = finished
        partial = lines[finished] if finished < len(lines) else ""
        partial_plain = text.rpartition("\n")[2]
        out.append(partial)
        rows = max(1, math.ceil(display_width(partial_plain) / _columns()))
        if final:
            if partial_plain:
                out.append("\n")
            self._bottom_rows = 0
        self._out.write("".join(out).encode("utf-8"))
        self._out.flush()
        if final:
            if self._status.err is not None:
                self._status.err.write(self._status.text(self._progress) + "\n")
                self._status.err.flush()
            return
        self._bottom_rows = rows
        if self._status.err is not None:
            self._out.write(b"\n")
            self._out.flush()
            self._status.err.write(self._status.text(self._progress))
            self._status.err.flush()
            self._bottom_rows = rows + 1

    def _clear_bottom(self) -> str:
        if self._bottom_rows == 0:
            return ""
        up = f"\x1b[{self._bottom_rows - 1}A" if self._bottom_rows > 1 else ""
        return "\r" + up + "\x1b[J"


def _for_screen(text: str) -> str:
    """Line ends as a terminal shows them (a lone CR would overwrite the line)."""
    return text.replace("\r\n", "\n").replace("\r", "\n")
