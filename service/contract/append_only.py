"""Writing a job's text to an output that cannot take anything back (a Chat Completions stream,
a pipe).

A ``reset`` says "discard the text so far", which such an output cannot do. What it can do
is stay exact when the retried attempt repeats what was already written (deterministic
upstreams, temperature 0, the simulator): after a reset the new attempt's text is compared
with what was written, and writing resumes where it runs past it. If the new attempt says
something else, :class:`Diverged` is raised and the caller must tell its reader so.
"""

from __future__ import annotations


class Diverged(Exception):
    """A retried attempt's text differs from text already written."""

    def __init__(self, written: int, attempt_text: str) -> None:
        super().__init__(
            f"a retried attempt produced different text after {written} characters had "
            "already been sent"
        )
        self.written = written
        self.attempt_text = attempt_text


class AppendOnlyText:
    """Turns ``token``/``reset`` events into appends to an output that is only appended to."""

    def __init__(self) -> None:
        self._written: list[str] = []
        self._attempt: list[str] = []
        # While a retried attempt repeats the written text: that text, and how far it got.
        self._replayed: str | None = None
        self._position = 0

    @property
    def written(self) -> str:
        """Everything returned by :meth:`token` so far."""
        return "".join(self._written)

    @property
    def attempt_text(self) -> str:
        """The current attempt's text so far."""
        return "".join(self._attempt)

    def token(self, text: str) -> str:
        """The part of ``text`` to append now (empty while a retried attempt repeats old
        text); raises :class:`Diverged` when the retried attempt says something else."""
        self._attempt.append(text)
        old = self._replayed
        if old is None:
            self._written.append(text)
            return text
        start = self._position
        left = len(old) - start
        if old[start : start + len(text)] != text[:left]:
            raise Diverged(len(old), self.attempt_text)
        if len(text) <= left:
            self._position += len(text)
            return ""
        self._replayed = None
        new = text[left:]
        self._written.append(new)
        return new

    def reset(self) -> None:
        """A new attempt starts: its text must repeat what was written before it adds to it."""
        self._attempt = []
        written = self.written
        self._replayed = written or None
        self._position = 0

    def finish(self) -> None:
        """The job is done: raise :class:`Diverged` if the last attempt ended shorter than what
        was written."""
        if self._replayed is not None and self._position < len(self._replayed):
            raise Diverged(len(self._replayed), self.attempt_text)
