"""The project's import graph, read statically with ``ast`` (imports inside functions and
literal ``importlib.import_module`` calls included), for the layout and cycle tests."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("cache", "jobs", "worker", "dashboard")

ENTRY_POINT_ALIASES = {("worker.settings", "worker.app")}
"""``arq worker.settings.WorkerSettings`` resolves ``worker.app.WorkerSettings`` by name when
ARQ's CLI asks for it (``worker.settings.__getattr__``); nothing in the code depends on it.
Only that ``import_module`` call is exempt: an import statement on the same edge still counts."""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    """Every module of ``PACKAGES``, found by walking the folders."""
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def imported_names(source: str, module: str, is_package: bool) -> Iterator[tuple[str, int, bool]]:
    """``(name, line, by_name)`` for every import of ``module``, anywhere in its body
    (``from a import b`` gives ``a.b``); ``by_name`` marks a literal ``import_module`` call."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno, False
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                yield f"{base}.{alias.name}", node.lineno, False
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.args[0].value, node.lineno, True


def module_imports(modules: dict[str, Path], module: str) -> Iterator[tuple[str, int, bool]]:
    path = modules[module]
    source = path.read_text(encoding="utf-8")
    return imported_names(source, module, path.name == "__init__.py")


def resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The project module ``name`` stands for (an attribute's owner when it is no module)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def import_graph(modules: dict[str, Path], nodes: set[str] | None = None) -> dict[str, set[str]]:
    """Edges between ``nodes`` (default: every module), the entry-point alias left out."""
    nodes = set(modules) if nodes is None else nodes
    graph: dict[str, set[str]] = {}
    for module in nodes:
        graph[module] = set()
        for name, _line, by_name in module_imports(modules, module):
            target = resolve(name, modules)
            if target is None or target == module or target not in nodes:
                continue
            if by_name and (module, target) in ENTRY_POINT_ALIASES:
                continue
            graph[module].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module, or self-loops (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found
