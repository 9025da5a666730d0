"""The documents cannot rot: every test docs/*.md cites exists, and no file of the repository
names a path, document or module of it that does not exist."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# `tests/pipeline/test_resume.py::test_resume_continues_right_after_last_event_id`, say.
CITATION = re.compile(r"\b(tests/[\w/]+\.py)::(test_\w+)")

TEXT_SUFFIXES = frozenset(
    {".md", ".py", ".js", ".mjs", ".html", ".css", ".toml", ".yml", ".yaml", ".txt", ".cfg"}
    | {".sh", ".lua", ".template"}
)
TEXT_NAMES = frozenset({"Makefile", "Dockerfile", "run"})  # `run`: .ci/run

# Notes kept outside the repository, which a file of it must not send a reader to.
OUTSIDE_NOTES = tuple(f"{stem}.md" for stem in ("DESIGN", "FACTS", "STYLE"))

_TOP = r"(?:service|worker|client|simulator|web|bench|tests|docs|deploy|\.ci)"
_EXT = r"(?:py|md|js|mjs|lua|ya?ml|json|toml|txt|sh|html|css|cfg|template)"
MARKDOWN_LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
DOCUMENT = re.compile(r"(?<![\w./-])((?:[\w.-]+/)*[\w-][\w.-]*\.md)(?![\w/-])")
REPO_FILE = re.compile(rf"(?<![\w./-])({_TOP}/[\w./-]*[\w-]\.{_EXT})(?![\w/*-])")
REPO_FOLDER = re.compile(rf"(?<![\w./-])({_TOP}/(?:[\w.-]+/)*)(?![\w*{{<])")
SERVICE_MODULE = re.compile(r"(?<![\w./-])(service(?:\.[A-Za-z_]\w*)+)")
URL_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def _git(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args], cwd=ROOT, input=stdin, capture_output=True, text=True, check=False
    )


def repository_files() -> list[Path]:
    """Files git tracks or would track (new and not ignored), that are still there."""
    listed = _git("ls-files", "--cached", "--others", "--exclude-standard", "-z")
    if listed.returncode != 0:
        pytest.skip(f"needs a git work tree: {listed.stderr.strip()}")
    names = sorted({name for name in listed.stdout.split("\0") if name})
    return [ROOT / name for name in names if (ROOT / name).is_file()]


def text_files() -> list[Path]:
    """The repository's source and documentation files."""
    return [
        path
        for path in repository_files()
        if path.suffix in TEXT_SUFFIXES or path.name in TEXT_NAMES
    ]


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return None


def _line(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _where(path: Path, text: str, offset: int) -> str:
    return f"{path.relative_to(ROOT)}:{_line(text, offset)}"


def _exists(path: Path, name: str) -> bool:
    """``name`` read from ``path``: relative to the repository's root or to its folder."""
    return (ROOT / name).exists() or (path.parent / name).exists()


def _anchors(document: Path) -> set[str]:
    """The anchors GitHub gives a markdown file's headings (code blocks skipped)."""
    anchors: set[str] = set()
    fenced = False
    for line in document.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (heading := re.match(r"#{1,6}\s+(.*)", line)):
            slug = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower()).replace(" ", "-")
            anchors.add(slug)
    return anchors


def _pointer(name: str) -> bool:
    """Whether a document name outside markdown points somewhere: a path, or a top-level
    note's capitals (``README.md``)."""
    stem = name.removesuffix(".md")
    return "/" in name or stem.isupper()


def _ignored(names: set[str]) -> set[str]:
    """Of ``names``, the ones .gitignore covers: outputs a run creates (bench/results/…)."""
    if not names:
        return set()
    answer = _git("check-ignore", "--stdin", "--no-index", stdin="\n".join(sorted(names)))
    return set(answer.stdout.split())


def _module_resolves(dotted: str) -> bool:
    """``service.a.b`` names a module, or one name a module defines."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        base = ROOT.joinpath(*parts[:end])
        source = base.with_suffix(".py") if base.with_suffix(".py").is_file() else None
        if source is None and (base / "__init__.py").is_file():
            source = base / "__init__.py"
        if source is None:
            continue
        rest = parts[end:]
        if not rest:
            return True
        if len(rest) > 1:
            return False
        name = re.escape(rest[0])
        defined = (
            rf"(?m)^\s*(?:async\s+def|def|class)\s+{name}\b|^{name}\b\s*[:=]|import\b.*\b{name}\b"
        )
        return re.search(defined, source.read_text(encoding="utf-8")) is not None
    return False


def test_every_test_the_docs_cite_exists() -> None:
    cited: list[tuple[str, str, str]] = []
    for doc in sorted((ROOT / "docs").glob("*.md")):
        text = doc.read_text(encoding="utf-8")
        for match in CITATION.finditer(text):
            cited.append((_where(doc, text, match.start()), match.group(1), match.group(2)))
    assert cited, "docs/*.md cite no test"
    missing = []
    for where, file, name in cited:
        test_file = ROOT / file
        source = test_file.read_text(encoding="utf-8") if test_file.is_file() else ""
        if not re.search(rf"(?m)^\s*(?:async\s+)?def {name}\(", source):
            missing.append(f"{where}: {file}::{name}")
    assert not missing, "cited tests that do not exist:\n" + "\n".join(missing)


def test_no_file_names_a_path_of_the_repository_that_does_not_exist() -> None:
    """Markdown links, document names, repository paths (files and folders) and, in markdown,
    ``service.…`` module names must all exist; paths .gitignore covers are outputs and may
    not exist yet."""
    problems: list[str] = []
    unresolved: list[tuple[str, str]] = []  # (where, name): missing unless .gitignore covers it
    for path in repository_files():
        text = _read(path)
        if text is None:
            continue
        for note in OUTSIDE_NOTES:
            for match in re.finditer(rf"(?<![\w/-]){re.escape(note)}", text):
                if not (ROOT / note).exists():
                    where = _where(path, text, match.start())
                    problems.append(f"{where}: names {note}, which is not in the repository")
        if path.suffix not in TEXT_SUFFIXES and path.name not in TEXT_NAMES:
            continue
        if path.suffix == ".md":
            for match in MARKDOWN_LINK.finditer(text):
                target = match.group(1)
                if URL_SCHEME.match(target) or target.startswith("#"):
                    continue
                target, _, anchor = target.partition("#")
                target = target.split("?", 1)[0]
                base = ROOT if target.startswith("/") else path.parent
                linked = (base / target.lstrip("/")) if target else path
                where = _where(path, text, match.start())
                if not linked.exists():
                    problems.append(f"{where}: the link ({match.group(1)}) goes nowhere")
                elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
                    problems.append(f"{where}: {linked.name} has no heading #{anchor}")
            for match in SERVICE_MODULE.finditer(text):
                if not _module_resolves(match.group(1)):
                    where = _where(path, text, match.start())
                    problems.append(f"{where}: no module or name {match.group(1)}")
        for pattern in (DOCUMENT, REPO_FILE, REPO_FOLDER):
            for match in pattern.finditer(text):
                name = match.group(1)
                if name in OUTSIDE_NOTES or _exists(path, name):
                    continue
                if pattern is DOCUMENT and path.suffix != ".md" and not _pointer(name):
                    continue  # a file name in code (a string, a link in generated text)
                unresolved.append((_where(path, text, match.start()), name))
    ignored = _ignored({name for _, name in unresolved})
    problems += [
        f"{where}: names {name}, which does not exist"
        for where, name in unresolved
        if name not in ignored
    ]
    assert not problems, "\n".join(sorted(set(problems)))
