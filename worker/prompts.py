"""The messages sent upstream: the caller's request plus a system message asking for bare code.

The output goes verbatim into a code editor, so the model must answer with code
only: a Markdown fence or a sentence of prose would end up in the user's file.

An edit (a job with a ``target``, docs/protocol.md "Edits") is sent as :func:`edit_messages`
builds it: the selection whole, and the document around it bounded to about
``EDIT_CONTEXT_TOKENS`` tokens, cut at whole lines.
"""

from __future__ import annotations

import re
from typing import Final

from service.contract.edits import EditTarget

# The document around an edit's selection: about this many tokens, estimated at
# CHARS_PER_TOKEN characters a token (code averages 3 to 4 with OpenAI's tokenizers), two
# thirds before the selection and one third after, in the whole lines nearest to it.
EDIT_CONTEXT_TOKENS: Final = 1500
CHARS_PER_TOKEN: Final = 4
_LINE_BREAK = re.compile(r"\r\n|\r|\n")

# How the language ids of the picker read in a sentence; any other id is used as it is.
_LANGUAGE_NAMES: Final = {
    "javascript": "JavaScript",
    "typescript": "TypeScript",
    "cpp": "C++",
    "csharp": "C#",
    "php": "PHP",
    "sql": "SQL",
    "html": "HTML",
    "css": "CSS",
    "shell": "shell script",
    "plaintext": "plain text",
}


def system_message(language: str | None) -> dict[str, str]:
    """The system message asking for only code (in ``language``, if given)."""
    what = "code" if language is None else f"{_LANGUAGE_NAMES.get(language, language)} code"
    content = (
        f"You write {what} that is inserted verbatim into a code editor. "
        "Reply with only the code: no Markdown code fences, no explanations, and no prose "
        "outside code comments."
    )
    return {"role": "system", "content": content}


def build_messages(
    *,
    prompt: str | None,
    messages: list[dict[str, str]] | None,
    language: str | None,
    target: EditTarget | None = None,
) -> list[dict[str, str]]:
    """The chat messages for one job: exactly one of ``prompt`` and ``messages`` is given.

    A system message asking for bare code comes first unless the caller's
    messages already start with their own system message. The caller's list
    is never modified. An edit (``target``, which comes with a ``prompt``) is
    :func:`edit_messages`.
    """
    if target is not None and prompt is not None and messages is None:
        return edit_messages(prompt, target, language)
    if prompt is not None and messages is None:
        conversation = [{"role": "user", "content": prompt}]
    elif messages is not None and prompt is None:
        conversation = [dict(message) for message in messages]
    else:
        raise ValueError("give exactly one of prompt and messages")
    if conversation and conversation[0].get("role") == "system":
        return conversation
    return [system_message(language), *conversation]


def edit_messages(prompt: str, target: EditTarget, language: str | None) -> list[dict[str, str]]:
    """An edit's messages: a system message, then the change asked for and the document
    around the target (the template is documented in docs/protocol.md, "Edits")."""
    what = "code" if language is None else f"{_LANGUAGE_NAMES.get(language, language)} code"
    place = "the selection" if not target.range.empty else "the cursor"
    system = (
        f"You edit {what} in a code editor. Your reply replaces the selection verbatim (or, "
        "when nothing is selected, is inserted at the cursor): reply with only the new code "
        "for that place, indented to fit the code around it. No Markdown code fences, no "
        "explanations, and no prose outside code comments."
    )
    before, selected, after = target.parts()
    budget = EDIT_CONTEXT_TOKENS * CHARS_PER_TOKEN
    before, hidden_above = _last_lines(before, budget * 2 // 3)
    after, hidden_below = _first_lines(after, budget // 3)
    where = target.range
    span = f"line {where.start_line}, column {where.start_column}"
    if not where.empty:
        span += f" to line {where.end_line}, column {where.end_column}"
    heading = [f"File: {target.name or 'untitled'}"]
    if language is not None:
        heading[0] += f" ({_LANGUAGE_NAMES.get(language, language)})"
    heading.append(f"{place.capitalize()}: {span}")
    parts = [f"Change to make at {place}:", prompt, "", *heading, ""]
    if hidden_above:
        parts.append(f"({hidden_above} lines above not shown)")
    parts += ["<before>", before, "</before>"]
    if not where.empty:
        parts += ["<selection>", selected, "</selection>"]
    else:
        parts.append("(the cursor: your code goes here)")
    parts += ["<after>", after, "</after>"]
    if hidden_below:
        parts.append(f"({hidden_below} lines below not shown)")
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n".join(parts)}]


def _last_lines(text: str, limit: int) -> tuple[str, int]:
    """The end of ``text`` in whole lines, at most ``limit`` characters (but always the
    partial line next to the selection), and how many lines were left out."""
    starts = [0, *(match.end() for match in _LINE_BREAK.finditer(text))]
    for hidden, start in enumerate(starts):
        if len(text) - start <= limit:
            return text[start:], hidden
    return text[starts[-1] :], len(starts) - 1


def _first_lines(text: str, limit: int) -> tuple[str, int]:
    """The start of ``text`` in whole lines, at most ``limit`` characters (but always the
    partial line next to the selection), and how many lines were left out."""
    ends = [*(match.end() for match in _LINE_BREAK.finditer(text)), len(text)]
    keep = ends[0]
    for end in ends[1:]:
        if end > limit:
            break
        keep = end
    lines = _LINE_BREAK.split(text[keep:])
    return text[:keep], len(lines) - (1 if lines[-1] == "" else 0)
