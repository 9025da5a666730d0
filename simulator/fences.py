"""Answers the way chat models give code: a line of prose, a Markdown fence with a language
tag, the code, a closing fence, maybe more blocks, and a closing remark.

Switched on per request with ``#sim fences=N`` (N fenced blocks; the first holds the code, the
others are short usage examples) or for every request with ``--fences N``. The wording, the
tag's spelling (``go`` or ``golang``), the fence (backticks or tildes, three or four) and the
blank lines depend only on the prompt and the seed, so a retried request repeats the answer.
The first block's content is exactly the code the request would get without fences (with a
line ending added when the code stops mid-line).
"""

from __future__ import annotations

import hashlib
import random

from simulator.languages import Language
from simulator.tokenizer import split_tokens

MAX_FENCES = 8
"""Upper bound on the blocks of one answer."""

# The info-string words a model writes for each language (the first is the usual one).
_TAGS: dict[str, tuple[str, ...]] = {
    "python": ("python", "python", "py", "python3"),
    "javascript": ("javascript", "js", "jsx"),
    "typescript": ("typescript", "ts"),
    "rust": ("rust", "rs"),
    "go": ("go", "go", "golang"),
    "java": ("java",),
    "c": ("c",),
    "cpp": ("cpp", "c++"),
    "ruby": ("ruby", "rb"),
    "shell": ("bash", "sh", "shell"),
}
_NAMES = {
    "python": "Python",
    "javascript": "JavaScript",
    "typescript": "TypeScript",
    "rust": "Rust",
    "go": "Go",
    "java": "Java",
    "c": "C",
    "cpp": "C++",
    "ruby": "Ruby",
    "shell": "shell",
}
_OPENERS = (
    "Here is a {name} implementation:",
    "Sure! Here's the code in {name}:",
    "Certainly. Below is a complete {name} solution.",
    "Here you go:",
    "The following {name} code does what you asked:",
)
_BETWEEN = (
    "Example usage:",
    "You can call it like this:",
    "And a quick check:",
)
_CLOSERS = (
    "Each function is small, so it is easy to test on its own.",
    "Let me know if you want it adapted further.",
    "This runs in linear time and uses constant extra memory.",
    "Hope this helps!",
)
_FENCES = ("```", "```", "```", "~~~", "````")


def fenced_tokens(
    prompt: str, code: list[str], language: Language, *, blocks: int, seed: str = ""
) -> list[str]:
    """``code``'s tokens inside the answer a chat model would wrap around them."""
    if blocks <= 0:
        return list(code)
    rng = random.Random(_seed_int(prompt, seed))
    name = _NAMES.get(language.name, language.name)
    tags = _TAGS.get(language.name, (language.name,))
    fence = rng.choice(_FENCES)
    tag = rng.choice(tags)
    gap = "\n\n" if rng.random() < 0.8 else "\n"

    def prose(text: str) -> list[str]:
        return split_tokens(text, rng)

    tokens = prose(rng.choice(_OPENERS).format(name=name) + gap + f"{fence}{tag}\n")
    tokens += code
    text = "".join(code)
    closing = fence + "\n" if text.endswith(("\n", "\r")) or not text else "\n" + fence + "\n"
    tokens += prose(closing)
    for _ in range(blocks - 1):
        example = f"{language.line_comment} {rng.choice(('run', 'try', 'call'))} it with your data"
        tokens += prose(f"\n{rng.choice(_BETWEEN)}\n\n```{tags[0]}\n{example}\n```\n")
    tokens += prose("\n" + rng.choice(_CLOSERS))
    return tokens


def _seed_int(prompt: str, seed: str) -> int:
    material = f"fences\x00{seed}\x00{prompt}".encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.sha256(material).digest()[:8], "big")
