"""The messages sent upstream: the caller's request plus a system message asking for bare code.

The output goes verbatim into a code editor, so the model must answer with code
only: a Markdown fence or a sentence of prose would end up in the user's file.
"""

from __future__ import annotations

from typing import Final

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
    *, prompt: str | None, messages: list[dict[str, str]] | None, language: str | None
) -> list[dict[str, str]]:
    """The chat messages for one job: exactly one of ``prompt`` and ``messages`` is given.

    A system message asking for bare code comes first unless the caller's
    messages already start with their own system message. The caller's list
    is never modified.
    """
    if prompt is not None and messages is None:
        conversation = [{"role": "user", "content": prompt}]
    elif messages is not None and prompt is None:
        conversation = [dict(message) for message in messages]
    else:
        raise ValueError("give exactly one of prompt and messages")
    if conversation and conversation[0].get("role") == "system":
        return conversation
    return [system_message(language), *conversation]
