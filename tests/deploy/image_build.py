"""A Dockerfile replayed without a Docker engine.

The Dockerfile is parsed with ``dockerfile-parse``; each stage gets a root folder of its own,
always at the same host path (``<work>/root``, moved aside when the next stage starts), so the
absolute paths that a virtualenv and an editable install record stay true from the stage that
wrote them to the stage that copies them. Image paths map to that root: ``/opt/venv`` is
``<work>/root/opt/venv``.

- ``COPY`` from the build context copies what ``docker build`` would send: the context folder
  less what ``.dockerignore`` excludes. ``COPY --from=<stage>`` copies from that stage's root.
- ``ENV`` and ``WORKDIR`` apply, with image paths mapped.
- ``RUN`` runs the steps that build the image's software here, one ``&&`` step at a time:
  ``python``, ``pip`` and ``npm``, with the base image's interpreter played by a fresh
  virtualenv made with ``python -m venv`` (``PIP_NO_CACHE_DIR`` is dropped so pip may reuse
  this machine's wheel cache). Other steps (``useradd``, ``apt-get``, ...) are recorded as
  skipped: they need root and the base image's system, and what they would install is not
  seen here.

Not supported (the checks would say so, or the Dockerfile does not use them): ``ARG``
substitution, ``RUN`` steps joined otherwise than by ``&&``, ``ADD`` of URLs or archives.
"""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from dockerfile_parse import DockerfileParser  # type: ignore[import-untyped]

# RUN steps replayed here, by program name; the rest are recorded as skipped.
REPLAYED_PROGRAMS = frozenset({"python", "python3", "pip", "pip3", "npm"})
_ENV_REF = re.compile(
    r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)\}|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))"
)
# Host variables that would change what pip, npm or Python do in the replay.
_HOST_ONLY = (
    "VIRTUAL_ENV",
    "PYTHONPATH",
    "PYTHONHOME",
    "PIP_NO_CACHE_DIR",
    "PIP_REQUIRE_VIRTUALENV",
)


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction, its raw value (no variable substitution) and its line."""

    name: str
    value: str
    line: int


@dataclass
class Stage:
    """One ``FROM`` and the instructions under it."""

    index: int
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def of(self, name: str) -> list[Instruction]:
        """This stage's instructions of one kind, in order."""
        return [i for i in self.instructions if i.name == name]


@dataclass(frozen=True)
class Copy:
    """A ``COPY`` (or ``ADD``) parsed: its ``--from`` stage (None = the build context), its
    sources and its destination, as written."""

    source_stage: str | None
    sources: tuple[str, ...]
    destination: str


def parse_dockerfile(text: str) -> list[Stage]:
    """The stages of a Dockerfile, parsed by dockerfile-parse (continuations, comments)."""
    parser = DockerfileParser(fileobj=io.BytesIO(text.encode()), env_replace=False)
    stages: list[Stage] = []
    for item in parser.structure:
        name = str(item["instruction"]).upper()
        value = str(item["value"])
        if name == "COMMENT":
            continue
        if name == "FROM":
            words = value.split()
            alias = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(len(stages), words[0], alias))
            continue
        if not stages:
            if name == "ARG":
                continue
            raise ValueError(f"line {item['startline'] + 1}: {name} before FROM")
        stages[-1].instructions.append(Instruction(name, value, int(item["startline"]) + 1))
    return stages


def parse_copy(instruction: Instruction) -> Copy:
    """``COPY [--from=x] [--chown=..] src... dest`` or its JSON form."""
    value = instruction.value.strip()
    flags: dict[str, str] = {}
    while value.startswith("--"):
        flag, _, value = value.partition(" ")
        key, _, flag_value = flag[2:].partition("=")
        flags[key] = flag_value
        value = value.lstrip()
    words = [str(w) for w in json.loads(value)] if value.startswith("[") else shlex.split(value)
    if len(words) < 2:
        raise ValueError(f"line {instruction.line}: COPY needs a source and a destination")
    return Copy(flags.get("from"), tuple(words[:-1]), words[-1])


def exec_form(instruction: Instruction) -> list[str]:
    """``ENTRYPOINT``/``CMD`` in JSON (exec) form."""
    value = json.loads(instruction.value)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"line {instruction.line}: {instruction.name} must be a JSON list")
    return [str(v) for v in value]


# --- .dockerignore ---------------------------------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go filepath.Match plus ``**``) as a regular expression."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("".join(out) + r"\Z")


@dataclass(frozen=True)
class DockerIgnore:
    """The rules of a .dockerignore: the last matching rule wins; a rule that matches a
    folder excludes everything under it; ``!`` rules bring paths back."""

    rules: tuple[tuple[bool, re.Pattern[str]], ...]

    @classmethod
    def parse(cls, text: str) -> DockerIgnore:
        rules: list[tuple[bool, re.Pattern[str]]] = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            keep = line.startswith("!")
            pattern = os.path.normpath(line.removeprefix("!").strip()).lstrip("/")
            rules.append((keep, _pattern_regex(pattern)))
        return cls(tuple(rules))

    def excludes(self, relative: str) -> bool:
        """Whether a context path (``a/b/c``, relative to the context root) is left out."""
        parts = PurePosixPath(relative).parts
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        excluded = False
        for keep, regex in self.rules:
            if any(regex.match(prefix) for prefix in prefixes):
                excluded = not keep
        return excluded


def context_files(context: Path) -> Iterator[str]:
    """Every file of a build context that .dockerignore lets through, relative, sorted."""
    ignore_file = context / ".dockerignore"
    ignore = DockerIgnore.parse(ignore_file.read_text() if ignore_file.exists() else "")
    for dirpath, dirnames, filenames in os.walk(context):
        base = Path(dirpath).relative_to(context)
        dirnames[:] = sorted(d for d in dirnames if not ignore.excludes((base / d).as_posix()))
        for name in sorted(filenames):
            relative = (base / name).as_posix()
            if not ignore.excludes(relative):
                yield relative


def send_context(context: Path, into: Path) -> None:
    """What ``docker build`` sends: the context less what .dockerignore excludes."""
    for relative in context_files(context):
        target = into / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(context / relative, target, follow_symlinks=False)


# --- the replay ------------------------------------------------------------------------------


@dataclass
class Replay:
    """The outcome of replaying a Dockerfile."""

    root: Path
    env: dict[str, str]
    workdir: str
    user: str | None
    entrypoint: list[str]
    cmd: list[str]
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def host_path(self, image_path: str) -> Path:
        """Where an absolute image path lies in the final stage's root."""
        return self.root / image_path.lstrip("/")

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """The image's entrypoint with ``args`` in place of CMD, as ``docker run IMAGE ARGS``."""
        return self.exec(*self.entrypoint, *args, timeout=timeout)

    def exec(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """A program of the final stage, found on its PATH, run in its WORKDIR."""
        program = shutil.which(argv[0], path=self.env["PATH"])
        if program is None:
            raise BuildFailed(f"{argv[0]!r} is not on the image's PATH")
        return subprocess.run(
            [program, *argv[1:]],
            cwd=self.host_path(self.workdir),
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


class BuildFailed(AssertionError):
    """A step of the replayed build failed: what a ``docker build`` would have stopped on."""


def replay(dockerfile: str, context: Path, work: Path, timeout: float = 600) -> Replay:
    """Replay ``dockerfile`` on ``context`` in the empty folder ``work``; returns the final
    stage, or raises BuildFailed with the step and its output."""
    stages = parse_dockerfile(dockerfile)
    sent = work / "context"
    send_context(context, sent)
    system = work / "system-python"
    subprocess.run(
        [_base_python(), "-m", "venv", str(system)], check=True, capture_output=True, timeout=120
    )
    root = work / "root"
    finished: dict[str, Path] = {}
    states: dict[str, Replay] = {}
    skipped_stages: set[str] = set()
    ran: list[str] = []
    skipped: list[str] = []
    result: Replay | None = None
    for stage in stages:
        if root.exists():
            raise AssertionError("the previous stage's root was not moved aside")
        if stage.base in finished:
            shutil.copytree(finished[stage.base], root, symlinks=True)
        else:
            root.mkdir()
        start = states.get(stage.base)
        result = _replay_stage(stage, sent, root, finished, skipped_stages, system, start, timeout)
        ran.extend(result.ran)
        skipped.extend(result.skipped)
        if stage is not stages[-1]:
            kept = work / f"stage-{stage.index}"
            root.rename(kept)
            for key in (str(stage.index), *([stage.name] if stage.name else [])):
                finished[key] = kept
                states[key] = result
    if result is None:
        raise BuildFailed("the Dockerfile has no FROM")
    result.ran, result.skipped = ran, skipped
    return result


def _base_python() -> str:
    """The interpreter this test runs on, outside any virtualenv (the image's python)."""
    return str(getattr(sys, "_base_executable", sys.executable))


def _replay_stage(
    stage: Stage,
    context: Path,
    root: Path,
    finished: dict[str, Path],
    skipped_stages: set[str],
    system: Path,
    start: Replay | None,
    timeout: float,
) -> Replay:
    """One stage, starting from an earlier stage's state when it is ``FROM`` that stage."""
    env = dict(start.env) if start else _start_env(system)
    workdir = start.workdir if start else "/"
    user = start.user if start else None
    entrypoint = list(start.entrypoint) if start else []
    cmd = list(start.cmd) if start else []
    ran: list[str] = []
    skipped: list[str] = []
    label = stage.name or str(stage.index)
    keys = {str(stage.index), *([stage.name] if stage.name else [])}

    def image(path: str) -> Path:
        absolute = path if path.startswith("/") else f"{workdir.rstrip('/')}/{path}"
        return root / os.path.normpath(absolute).lstrip("/")

    for instruction in stage.instructions:
        where = f"stage {label}, line {instruction.line}: {instruction.name} {instruction.value}"
        if instruction.name == "ENV":
            for key, value in _env_pairs(instruction.value):
                env[key] = _expand(_map_paths(value, root), env)
        elif instruction.name == "WORKDIR":
            workdir = os.path.normpath(
                instruction.value
                if instruction.value.startswith("/")
                else f"{workdir}/{instruction.value}"
            )
            image(workdir).mkdir(parents=True, exist_ok=True)
        elif instruction.name in {"COPY", "ADD"}:
            _copy(parse_copy(instruction), context, finished, skipped_stages, image, where)
        elif instruction.name == "RUN":
            for step in _steps(instruction.value):
                words = shlex.split(step)
                if not words or PurePosixPath(words[0]).name not in REPLAYED_PROGRAMS:
                    skipped.append(step)
                    skipped_stages.update(keys)
                    continue
                argv = [_map_word(_expand(word, env), root) for word in words]
                program = shutil.which(argv[0], path=env["PATH"])
                if program is None:
                    raise BuildFailed(f"{where}\n{argv[0]} is not on the stage's PATH")
                done = subprocess.run(
                    [program, *argv[1:]],
                    cwd=image(workdir),
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=timeout,
                    check=False,
                )
                if done.returncode != 0:
                    raise BuildFailed(
                        f"{where}\n`{step}` exited {done.returncode}:\n"
                        f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
                    )
                ran.append(step)
        elif instruction.name == "USER":
            user = instruction.value.strip()
        elif instruction.name == "ENTRYPOINT":
            entrypoint = exec_form(instruction)
        elif instruction.name == "CMD":
            cmd = exec_form(instruction)
    return Replay(root, env, workdir, user, entrypoint, cmd, ran, skipped)


def _start_env(system: Path) -> dict[str, str]:
    """The host's environment less what would leak into the replay, with the stand-in for the
    base image's interpreter first on PATH."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in _HOST_ONLY and not key.startswith("TOKENRELAY_")
    }
    env["PATH"] = f"{system / 'bin'}{os.pathsep}{os.environ.get('PATH', os.defpath)}"
    return env


def _env_pairs(value: str) -> Iterable[tuple[str, str]]:
    """``ENV A=1 B=2`` or the old ``ENV A 1`` form."""
    words = shlex.split(value, posix=True)
    if words and "=" not in words[0]:
        return [(words[0], " ".join(words[1:]))]
    return [tuple(word.split("=", 1)) for word in words]  # type: ignore[misc]


def _expand(text: str, env: dict[str, str]) -> str:
    """``$NAME`` and ``${NAME}`` from the stage's environment (unset: empty, as the shell)."""
    return _ENV_REF.sub(lambda m: env.get(m.group("braced") or m.group("plain"), ""), text)


def _map_paths(value: str, root: Path) -> str:
    """Absolute image paths in a ``:``-separated value (``/opt/venv/bin:$PATH``) mapped to the
    stage root; variable references are left for expansion."""
    return ":".join(_map_word(part, root) for part in value.split(":"))


def _map_word(word: str, root: Path) -> str:
    if (
        word.startswith("/")
        and not word.startswith(("//", "/dev/", str(root)))  # `//` : the rest of a URL
    ):
        return str(root / word.lstrip("/"))
    return word


def _steps(command: str) -> list[str]:
    """A RUN command cut at ``&&`` (outside quotes)."""
    steps: list[str] = []
    current: list[str] = []
    quote: str | None = None
    i = 0
    while i < len(command):
        char = command[i]
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif command.startswith("&&", i):
            steps.append("".join(current).strip())
            current = []
            i += 2
            continue
        current.append(char)
        i += 1
    steps.append("".join(current).strip())
    return [s for s in steps if s]


def _copy(
    copy: Copy,
    context: Path,
    finished: dict[str, Path],
    skipped_stages: set[str],
    image: Callable[[str], Path],
    where: str,
) -> None:
    if copy.source_stage is None:
        source_root = context
    elif copy.source_stage in finished:
        source_root = finished[copy.source_stage]
    else:
        raise BuildFailed(f"{where}\nno earlier stage {copy.source_stage!r}")
    sources: list[Path] = []
    for pattern in copy.sources:
        relative = os.path.normpath(pattern).lstrip("/")
        matches = sorted(source_root.glob(relative)) if any(c in relative for c in "*?[") else []
        if not matches and (source_root / relative).exists():
            matches = [source_root / relative]
        if not matches:
            if copy.source_stage in skipped_stages:
                # Made by a step not replayed here: an empty stand-in keeps the layout.
                image(copy.destination).mkdir(parents=True, exist_ok=True)
                continue
            what = (
                "the build context" if copy.source_stage is None else f"stage {copy.source_stage}"
            )
            raise BuildFailed(f"{where}\n{pattern!r} is not in {what}")
        sources.extend(matches)
    destination = image(copy.destination)
    into_folder = copy.destination.endswith("/") or len(copy.sources) > 1
    for source in sources:
        if source.is_dir() and not source.is_symlink():
            shutil.copytree(source, destination, symlinks=True, dirs_exist_ok=True)
        else:
            target = (
                destination / source.name if into_folder or destination.is_dir() else destination
            )
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target, follow_symlinks=False)
