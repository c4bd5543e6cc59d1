"""Imports run one way: no cycles between derain_cli's modules; the weights cache below the models.

The graph is built from the source with ``ast``: an edge A -> B for every import of B that runs
when A is imported (module level, class bodies and ``if``/``try`` blocks; not function bodies, not
``if TYPE_CHECKING:``), plus the packages that importing B initialises on the way (B's ancestors
that are not A's own).
"""

from __future__ import annotations

import ast
from pathlib import Path

import derain_cli

PACKAGE_DIR = Path(derain_cli.__file__).parent
ROOT = "derain_cli"


def _module_names() -> dict[str, Path]:
    out = {}
    for path in PACKAGE_DIR.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _module_names()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _resolve(importer: str, node: ast.ImportFrom | ast.Import) -> list[str]:
    """The derain_cli modules an import statement in ``importer`` names."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == ROOT]
    package = importer if _is_package(importer) else importer.rpartition(".")[0]
    if node.level:
        base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
        base = ".".join(base + ([node.module] if node.module else []))
    else:
        base = node.module or ""
    if base.split(".")[0] != ROOT:
        return []
    names = []
    for alias in node.names:
        child = f"{base}.{alias.name}"
        names.append(child if child in MODULES else base)  # a submodule, or a name defined in base
    return names


def _runs_at_import(tree: ast.Module):
    """The import statements executed when the module is imported."""
    todo = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            todo.extend(node.orelse)
        else:
            todo.extend(ast.iter_child_nodes(node))


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        own = set(_ancestors(name)) | {name}
        for node in _runs_at_import(tree):
            for target in _resolve(name, node):
                if target not in MODULES:
                    continue
                graph[name].add(target)
                graph[name].update(a for a in _ancestors(target) if a not in own and a in MODULES)
        graph[name].discard(name)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle in ``graph`` as a list of nodes (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_graph_sees_relative_imports_and_initialised_packages():
    graph = import_graph()
    assert "derain_cli.models._registry" in graph["derain_cli.models.archs.glgfn"]
    assert "derain_cli.models.layers.restormer" in graph["derain_cli.models.archs.glgfn"]
    # importing archs.plnlin runs models/__init__ and archs/__init__ first
    assert {"derain_cli.models.archs.plnlin", "derain_cli.models.archs", "derain_cli.models"} <= graph[
        "derain_cli.train.mcddl"]
    assert "derain_cli.weights" in graph["derain_cli.models._registry"]
    assert "derain_cli.models._loading" not in graph["derain_cli.models"]  # only under TYPE_CHECKING or lazily


def test_module_level_imports_have_no_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_weights_cache_never_imports_the_models():
    """Not even inside a function: what it needs from a network is passed in (models -> weights)."""
    offenders = []
    for name, path in MODULES.items():
        if not name.startswith(f"{ROOT}.weights"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                bad = [t for t in _resolve(name, node) if t.startswith(f"{ROOT}.models")]
                bad += [a.name for a in getattr(node, "names", []) if a.name.split(".")[0] == "torch"]
                if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "torch":
                    bad.append(node.module)
                offenders += [f"{name}:{node.lineno} imports {b}" for b in bad]
    assert not offenders, offenders
