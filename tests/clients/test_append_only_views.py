"""Text that cannot be taken back: a retry that repeats what was written goes on seamlessly;
one that says something else is reported (pipe) or shown after a separator (terminal)."""

from __future__ import annotations

import io

import pyte
import pytest

from service.cli.code_highlight import Highlighter
from service.cli.terminal_view import PipeView, Progress, TerminalView
from service.contract.append_only import AppendOnlyText, Diverged


def test_a_retry_that_repeats_the_written_text_continues_where_it_ran_past_it() -> None:
    text = AppendOnlyText()
    assert [text.token("def f("), text.token("x):\n")] == ["def f(", "x):\n"]
    text.reset()
    assert [text.token("def"), text.token(" f(x)"), text.token(":\n  return x")] == [
        "",
        "",
        "  return x",
    ]
    text.finish()
    assert text.written == "def f(x):\n  return x"


@pytest.mark.parametrize("retry", ["def g(", "de"], ids=["different", "shorter"])
def test_a_retry_that_says_something_else_diverges(retry: str) -> None:
    text = AppendOnlyText()
    text.token("def f(")
    text.reset()
    with pytest.raises(Diverged):
        text.token(retry)
        text.finish()


def test_pipe_view_stops_writing_and_reports_when_a_retry_diverges() -> None:
    out = io.BytesIO()
    view = PipeView(out, None)
    view.show("héllo\r\n")
    view.reset()
    view.show("goodbye")
    view.close(Progress(status="done"), done=True)
    assert view.diverged
    assert out.getvalue() == "héllo\r\n".encode()


def test_terminal_view_shows_a_diverging_retry_after_a_separator() -> None:
    out = io.BytesIO()
    view = TerminalView(out, None, Highlighter("python"))
    view.show("x = 1\ny = ")
    view.reset()
    view.show("x = 2\n")
    view.show("print(x)")
    view.close(Progress(status="done"), done=True)
    screen = pyte.Screen(80, 10)
    pyte.ByteStream(screen).feed(out.getvalue().replace(b"\n", b"\r\n"))
    lines = [line.rstrip() for line in screen.display if line.strip()]
    assert lines[0] == "x = 1"
    assert lines[-2:] == ["x = 2", "print(x)"]
    assert "restarted" in lines[-3]
    assert not view.diverged
