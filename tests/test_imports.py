"""Dependency directions inside holdtts, read from the source (ast), so lazy imports inside functions count.

The layers: diffusion and models are the base; privacy (attacks) builds on models and processes; defenses
build on models and training; the model layer loads other kinds of system through a registry that the
defenses add to (holdtts.models.loading.register_loader). The package root (holdtts/__init__.py) is where
the layers meet and may import any of them; `import holdtts` inside a subpackage is not an edge.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "holdtts"

# Edges that close a circle today. Each is a known debt, not a permission: remove the edge from the code,
# then from this list (the test fails while a listed edge no longer exists, to keep the list honest).
KNOWN_CIRCLE_EDGES: dict[tuple[str, str], str] = {}  # none: checkpoint files live in utils/, the vocoder
# trainer in training/


def node_of(path: Path) -> str | None:
    """The top-level subpackage (or root module) a source file belongs to; None for the package root."""
    parts = path.relative_to(PACKAGE).parts
    if len(parts) > 1:
        return parts[0]
    name = parts[0].removesuffix(".py")
    return None if name == "__init__" else name


def imported_nodes(path: Path) -> set[str]:
    """Top-level holdtts subpackages (or root modules) a file imports, at any depth of its code."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's own package
                base = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)[: -node.level]
                names = [".".join(base + ([node.module] if node.module else []))]
            else:
                names = [node.module or ""]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "holdtts" and len(parts) > 1:
                found.add(parts[1])
    return found


def import_graph() -> dict[str, dict[str, list[str]]]:
    """{node: {imported node: [files]}}, edges between different nodes only."""
    graph: dict[str, dict[str, list[str]]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        source = node_of(path)
        if source is None:
            continue
        graph.setdefault(source, {})
        for target in imported_nodes(path):
            if target != source:
                graph[source].setdefault(target, []).append(str(path.relative_to(PACKAGE.parent)))
    return graph


def find_circle(graph: dict[str, dict[str, list[str]]]) -> list[str] | None:
    """One import circle as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, {})):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def without(graph, edges):
    return {source: {t: f for t, f in targets.items() if (source, t) not in edges} for source, targets in graph.items()}


def test_the_graph_sees_lazy_and_relative_imports(tmp_path):
    assert "training" in import_graph()["defenses"]  # dualmd.py imports make_trainer inside a function
    circle = {"a": {"b": ["x"]}, "b": {"c": ["y"]}, "c": {"a": ["z"]}, "d": {"a": ["w"]}}
    assert find_circle(circle) == ["a", "b", "c", "a"]
    assert find_circle(without(circle, {("c", "a")})) is None


def test_base_layers_never_import_defenses_or_privacy():
    graph = import_graph()
    for base in ("models", "diffusion"):
        for upper in ("defenses", "privacy"):
            assert upper not in graph[base], f"{base} imports {upper}: {graph[base].get(upper)}"
    assert "defenses" not in graph["privacy"], f"privacy imports defenses: {graph['privacy'].get('defenses')}"


def test_no_import_circles_between_subpackages():
    graph = import_graph()
    stale = [edge for edge in KNOWN_CIRCLE_EDGES if edge[1] not in graph.get(edge[0], {})]
    assert not stale, f"no longer imported, remove from KNOWN_CIRCLE_EDGES: {stale}"
    circle = find_circle(without(graph, set(KNOWN_CIRCLE_EDGES)))
    if circle:
        hops = [f"{a} -> {b} ({', '.join(graph[a][b])})" for a, b in zip(circle, circle[1:])]
        pytest.fail("import circle:\n  " + "\n  ".join(hops))


def test_loading_a_model_or_attacking_does_not_import_the_defenses():
    code = ("import sys\n"
            "import holdtts.models.loading\n"
            "from holdtts.privacy.attacks import get_attack\n"
            "get_attack('synth_distance')\n"
            "assert 'holdtts.defenses' not in sys.modules, 'holdtts.defenses imported'\n"
            "import holdtts\n"
            "assert callable(holdtts.load_model) and 'holdtts.defenses' not in sys.modules\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
