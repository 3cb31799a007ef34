"""The package's import structure, read from the source (ast): no import circles, and the layers
cli -> workflows -> stage packages -> shared utilities, never upwards.

Every `import` counts, also those inside functions (a deferred import hides a circle, it does not remove it);
only `if TYPE_CHECKING:` blocks are left out, since they never run.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import fusionproxy

PACKAGE = Path(fusionproxy.__file__).resolve().parent
ENTRY_POINTS = {"fusionproxy.__main__"}  # `python -m fusionproxy` starts the CLI
# Shared utilities: what every stage may use; they use nothing above them.
SHARED = {"fusionproxy.errors", "fusionproxy.registry", "fusionproxy.config_files", "fusionproxy.model_dir",
          "fusionproxy.devices", "fusionproxy.weights", "fusionproxy.weights.paths", "fusionproxy.weights.wheels"}


def _layer(module: str) -> int:
    """3: cli, 2: workflows, 1: a stage package or module, 0: a shared utility."""
    if module == "fusionproxy.cli" or module.startswith("fusionproxy.cli.") or module in ENTRY_POINTS:
        return 3
    if module == "fusionproxy.workflows" or module.startswith("fusionproxy.workflows."):
        return 2
    return 0 if module in SHARED else 1


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package (a package by its __init__.py)."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ["fusionproxy", *path.relative_to(PACKAGE).with_suffix("").parts]
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node except those under `if TYPE_CHECKING:`."""
    found, stack = [], [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        found.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return found


@cache  # parsed once for all the tests below (read-only)
def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports (`from a import b` names module a.b when b is one)."""
    modules = _modules()

    def known(name: str) -> str:
        while name not in modules:
            name = name.rpartition(".")[0]
        return name

    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        here = module.split(".") if is_package else module.split(".")[:-1]
        targets: set[str] = set()
        for node in _runtime_nodes(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {known(a.name) for a in node.names if a.name.startswith("fusionproxy")}
            elif isinstance(node, ast.ImportFrom):
                base = ".".join([*here[: len(here) - node.level + 1], *([node.module] if node.module else [])])
                if node.level == 0:
                    base = node.module or ""
                if base.split(".")[0] != "fusionproxy":
                    continue
                targets |= {f"{base}.{a.name}" if f"{base}.{a.name}" in modules else known(base) for a in node.names}
        graph[module] = targets - {module}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_graph_sees_the_package() -> None:
    graph = import_graph()
    assert "fusionproxy.students.registry" in graph["fusionproxy.students.convnext_unet"]
    assert "fusionproxy.weights" in graph["fusionproxy.metrics.naturalness"]
    assert find_cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]


def test_no_import_circles() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_layers_only_import_downwards() -> None:
    upward = sorted(f"{module} -> {target}" for module, targets in import_graph().items()
                    for target in targets if _layer(target) > _layer(module))  # fmt: skip
    assert not upward, "imports against the layers (cli -> workflows -> stages -> shared):\n" + "\n".join(upward)


def test_every_shared_utility_exists() -> None:
    assert SHARED <= set(import_graph())
