"""The layering of ARCHITECTURE.md holds: imports run one way (the contracts in pyproject.toml,
checked by import-linter), and no module imports itself through others."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("service", "worker", "client", "simulator")


def test_imports_follow_the_layers_in_pyproject() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_no_module_imports_itself_through_others() -> None:
    graph = grimp.build_graph(*PACKAGES, include_external_packages=False, cache_dir=None)
    assert _cycles(graph) == []


def test_the_cycle_check_finds_a_cycle() -> None:
    graph = grimp.ImportGraph()
    for module in ("a", "b", "c"):
        graph.add_module(module)
    graph.add_import(importer="a", imported="b")
    graph.add_import(importer="b", imported="c")
    graph.add_import(importer="c", imported="a")
    assert _cycles(graph) == [["a", "b", "c"]]


def _modules_in_architecture_table() -> dict[str, set[str]]:
    """Folder → the module names its rows of ARCHITECTURE.md's layout table give."""
    text = (ROOT / "ARCHITECTURE.md").read_text("utf-8")
    section = text.split("## Layout", 1)[1].split("\n## ", 1)[0]
    named: dict[str, set[str]] = {}
    folder = ""
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 3 or cells[0] in ("folder", "---"):
            continue
        folder = cells[0].strip("`") or folder
        names = {part.strip().strip("`") for part in cells[1].split(",") if part.strip()}
        named.setdefault(folder, set()).update(names)
    return named


def test_architecture_names_every_module_in_its_layout_table() -> None:
    named = _modules_in_architecture_table()
    for package in PACKAGES:
        for init in sorted((ROOT / package).rglob("__init__.py")):
            folder = init.parent.relative_to(ROOT).as_posix() + "/"
            modules = {path.name for path in init.parent.glob("*.py") if path.name != "__init__.py"}
            # A subpackage without a row of its own (a folder of scripts) is named by its parent.
            modules |= {
                f"{sub.name}/"
                for sub in init.parent.iterdir()
                if (sub / "__init__.py").exists() and f"{folder}{sub.name}/" not in named
            }
            if not modules:
                continue
            if folder.count("/") > 1 and f"{init.parent.name}/" in named.get(
                init.parent.parent.relative_to(ROOT).as_posix() + "/", set()
            ):
                continue
            assert named.get(folder) == modules, f"ARCHITECTURE.md's rows for {folder}"
