"""The Docker image builds from a clean context, proved without a Docker engine.

The Dockerfile is parsed with dockerfile-parse and replayed by tests/deploy/image_build.py:
the build context after .dockerignore, every COPY, the npm and pip steps in a fresh
virtualenv. The image's own commands then start from what the final stage holds, and every
package that pyproject.toml ships must be in it, whole. A package added without a COPY fails
here (and the fast static check below names it)."""

from __future__ import annotations

import fnmatch
import re
import shlex
import tomllib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import pytest

from tests.deploy.image_build import (
    DockerIgnore,
    Replay,
    Stage,
    context_files,
    parse_copy,
    parse_dockerfile,
    replay,
)

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def shipped_packages(context: Path) -> list[str]:
    """Every package that setuptools' ``packages.find`` in pyproject.toml includes (folders with
    an ``__init__.py`` in the build context, as dotted names)."""
    config = tomllib.loads((context / "pyproject.toml").read_text())
    include: list[str] = config["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {
        ".".join(PurePosixPath(path).parent.parts)
        for path in context_files(context)
        if PurePosixPath(path).name == "__init__.py"
    }
    return sorted(p for p in packages if any(fnmatch.fnmatchcase(p, pat) for pat in include))


def install_stage(stages: list[Stage]) -> tuple[Stage, int]:
    """The stage that runs ``pip install`` and the line of that RUN."""
    for stage in stages:
        for instruction in stage.of("RUN"):
            if re.search(r"\bpip3? install\b", instruction.value):
                return stage, instruction.line
    raise AssertionError("no RUN in the Dockerfile installs tokenrelay with pip")


def uncopied_packages(dockerfile: str, context: Path) -> set[str]:
    """Top-level packages that no COPY from the build context brings into the install stage
    before its ``pip install``."""
    stage, install_line = install_stage(parse_dockerfile(dockerfile))
    sources: set[str] = set()
    for instruction in stage.of("COPY"):
        copy = parse_copy(instruction)
        if instruction.line < install_line and copy.source_stage is None:
            sources.update(str(PurePosixPath(s.rstrip("/"))).lstrip("/") for s in copy.sources)
    top_level = {name.split(".")[0] for name in shipped_packages(context)}
    return {
        name
        for name in top_level
        if not any(src == "." or fnmatch.fnmatchcase(name, src) for src in sources)
    }


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replay]:
    """The repository's Dockerfile replayed on the repository as its build context."""
    yield replay(DOCKERFILE.read_text(), ROOT, tmp_path_factory.mktemp("image"))


@pytest.mark.slow
@pytest.mark.parametrize("command", ["gateway", "worker", "simulate-upstream"])
def test_the_image_commands_start(image: Replay, command: str) -> None:
    done = image.run(command, "--help")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith(f"usage: tokenrelay {command}"), done.stdout


@pytest.mark.slow
def test_the_image_holds_every_shipped_package_whole_and_importable(image: Replay) -> None:
    packages = shipped_packages(ROOT)
    assert {"service", "worker", "simulator", "client"} <= set(packages)
    app = image.host_path(image.workdir)
    missing = [
        path
        for path in context_files(ROOT)
        if path.split("/")[0] in {p.split(".")[0] for p in packages} and not (app / path).is_file()
    ]
    assert not missing, f"files of shipped packages missing from the image: {missing[:20]}"
    script = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)"
    done = image.exec("python", "-c", script, *packages)
    assert done.returncode == 0, done.stderr


@pytest.mark.slow
def test_the_image_serves_the_page_and_monaco_from_beside_the_sources(image: Replay) -> None:
    script = (
        "from service.gateway.api.page import MONACO_DIR, WEB_DIR\n"
        "print(WEB_DIR)\nprint(MONACO_DIR)"
    )
    done = image.exec("python", "-c", script)
    assert done.returncode == 0, done.stderr
    web_dir, monaco_dir = (Path(line) for line in done.stdout.split())
    assert web_dir == image.host_path("/app/web")
    assert (web_dir / "index.html").is_file()
    assert (monaco_dir / "loader.js").is_file(), "Monaco (npm ci in the web stage) is missing"


@pytest.mark.slow
def test_the_replay_ran_the_install_steps_and_skipped_only_user_creation(image: Replay) -> None:
    assert any(step.startswith("npm ci") for step in image.ran)
    assert any(re.match(r"pip install .*-c constraints\.txt", step) for step in image.ran)
    assert {shlex.split(step)[0] for step in image.skipped} <= {"groupadd", "useradd"}


def test_every_shipped_package_is_copied_before_pip_install() -> None:
    assert uncopied_packages(DOCKERFILE.read_text(), ROOT) == set()


def test_a_package_left_out_of_the_dockerfile_is_named() -> None:
    without_client = "\n".join(
        line
        for line in DOCKERFILE.read_text().splitlines()
        if line.strip() != "COPY client ./client"
    )
    assert without_client != DOCKERFILE.read_text()
    assert uncopied_packages(without_client, ROOT) == {"client"}


def test_the_install_is_pinned_editable_and_has_the_otel_extra() -> None:
    stage, line = install_stage(parse_dockerfile(DOCKERFILE.read_text()))
    (run,) = [i for i in stage.of("RUN") if i.line == line]
    words = shlex.split(run.value)
    assert words[words.index("-c") + 1] == "constraints.txt"
    assert words[words.index("-e") + 1] == ".[otel]"


def test_the_final_stage_is_slim_with_no_build_tools_and_a_non_root_user() -> None:
    stages = parse_dockerfile(DOCKERFILE.read_text())
    final = stages[-1]
    assert len(stages) >= 3, "multi-stage: web (npm), build (pip) and the final stage"
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", final.base), final.base
    for run in final.of("RUN"):
        assert not re.search(r"\b(apt-get|apk|pip|npm|gcc|make)\b", run.value), run.value
    (user,) = final.of("USER")
    uid = user.value.split(":")[0]
    assert uid.isdigit(), "numeric, so Kubernetes' runAsNonRoot can verify it"
    assert int(uid) != 0
    assert any(f"--uid {uid}" in run.value for run in final.of("RUN"))
    copied_from = {parse_copy(c).source_stage for c in final.of("COPY")} - {None}
    named = {s.name for s in stages[:-1]}
    assert copied_from <= named, "the final stage copies only from this file's build stages"


def test_monaco_comes_from_npm_ci_on_the_lockfile() -> None:
    stages = parse_dockerfile(DOCKERFILE.read_text())
    (web,) = [s for s in stages if s.base.startswith("node:")]
    copied = {src for c in web.of("COPY") for src in parse_copy(c).sources}
    assert {"web/package.json", "web/package-lock.json"} <= copied
    assert any(run.value.startswith("npm ci") for run in web.of("RUN"))
    final_copies = [parse_copy(c) for c in stages[-1].of("COPY")]
    assert any(c.source_stage == web.name and "node_modules" in c.destination for c in final_copies)


@pytest.mark.parametrize(
    ("path", "excluded"),
    [
        (".venv/bin/python", True),
        (".env", True),
        (".git/config", True),
        ("web/node_modules/monaco-editor/package.json", True),
        (".tokenrelay/redis.url", True),
        ("service/__pycache__/x.cpython-311.pyc", True),
        ("tokenrelay.egg-info/PKG-INFO", True),
        ("test-output/log.txt", True),
        ("service/gateway/app.py", False),
        ("service/contract/store/scripts/create_job.lua", False),
        ("web/index.html", False),
        ("web/js/stream.js", False),
        ("constraints.txt", False),
    ],
)
def test_dockerignore_keeps_local_state_out_and_sources_in(path: str, excluded: bool) -> None:
    ignore = DockerIgnore.parse((ROOT / ".dockerignore").read_text())
    assert ignore.excludes(path) is excluded
