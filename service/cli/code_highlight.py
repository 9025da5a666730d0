"""Syntax highlighting of code for a terminal, line by line, with pygments when it is installed.

The whole text is lexed each time (a string or comment may span lines), and the formatted
output is split into lines; pygments' terminal formatter closes every colour at a line's
end, so each line can be written on its own.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

# Monaco language ids (the page's picker) as pygments lexer names.
_LEXERS = {"shell": "bash", "plaintext": "text", "csharp": "csharp", "cpp": "cpp"}


class Highlighter:
    """ANSI-coloured lines of code in one language; plain lines without pygments."""

    def __init__(self, language: str | None) -> None:
        self._lexer: Any = None
        self._formatter: Any = None
        if language is None or language == "plaintext":
            return
        try:
            from pygments.formatters import TerminalFormatter
            from pygments.lexers import get_lexer_by_name
            from pygments.util import ClassNotFound
        except ImportError:
            return
        options = {"stripnl": False, "ensurenl": False, "stripall": False}
        if language == "php":
            options["startinline"] = True
        try:
            self._lexer = get_lexer_by_name(_LEXERS.get(language, language), **options)
        except ClassNotFound:
            log.debug("no lexer for this language", extra={"language": language})
            return
        self._formatter = TerminalFormatter()

    @property
    def active(self) -> bool:
        """Whether lines come out coloured."""
        return self._lexer is not None

    def lines(self, text: str) -> list[str]:
        """``text`` split on ``\\n``, each line coloured (without its newline)."""
        if self._lexer is None or not text:
            return text.split("\n")
        from pygments import highlight

        coloured: str = highlight(text, self._lexer, self._formatter)
        lines = coloured.split("\n")
        plain = text.split("\n")
        if len(lines) != len(plain):  # a lexer that changed the line count: stay plain
            return plain
        return lines
