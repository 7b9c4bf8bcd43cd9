"""The project's structure stays one-way: imports (top-level and inside functions alike) form no
circle and never run back up the layers, and no module grows past the size a reader can hold.

Layers, top to bottom: the entry point (``benchmark.cli``, ``benchmark.__main__``), the commands
(``benchmark.commands.*``), their shared plumbing (``benchmark.commands.common``), the library
(every other ``benchmark`` module) and ``architectures``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("benchmark", "architectures")
MAX_LINES = 450


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {
        module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def imported(name: str, path: Path, known: set[str]) -> set[str]:
    """Project modules that ``name`` imports anywhere in its source."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            # the longest known module the name refers to (a function import names its module)
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    edges = {name: imported(name, path, known) for name, path in mods.items()}
    # ``from benchmark import x`` also lists the package itself; a module importing its own
    # package's __init__ is how Python works, not a dependency worth a layer
    return {name: {t for t in targets if t not in PACKAGES} for name, targets in edges.items()}


def layer(name: str) -> int:
    if name in ("benchmark.cli", "benchmark.__main__"):
        return 0
    if name in (
        "benchmark.commands.common",
        "benchmark.commands.models",
        "benchmark.commands.values",
    ):
        return 2  # what the commands share: plumbing, the models' checks, flags' text
    if name.startswith("benchmark.commands"):
        return 1
    if name.startswith("benchmark"):
        return 3
    return 4


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_graph_is_read_from_the_source() -> None:
    edges = graph()
    assert "benchmark.commands.run" in edges["benchmark.cli"]
    assert "benchmark.trainer" in edges["benchmark.runs"]
    assert "architectures.registry" in edges["architectures.model"]


def test_find_cycle_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_circle() -> None:
    cycle = find_cycle(graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def test_no_import_runs_back_up() -> None:
    upward = [
        f"{source} -> {target}"
        for source, targets in graph().items()
        for target in targets
        if layer(target) < layer(source)
    ]
    assert not upward, "imports that run back up: " + ", ".join(sorted(upward))


def test_no_command_imports_another() -> None:
    """Commands share ``commands.common``, ``commands.values`` and the library, so each can
    change on its own."""
    crossing = [
        f"{source} -> {target}"
        for source, targets in graph().items()
        for target in targets
        if layer(source) == layer(target) == 1
    ]
    assert not crossing, "commands importing commands: " + ", ".join(sorted(crossing))


@pytest.mark.parametrize("name", sorted(modules()))
def test_module_size(name: str) -> None:
    lines = len(modules()[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{name}: {lines} lines, more than {MAX_LINES}"
