"""The import graph of ``cache``, ``jobs`` and ``worker`` has no cycle, and settings is a leaf.

Modules are found by walking the package folders, so moves and new subpackages are covered
without editing this file. Every import counts, also those inside functions, and so does a
literal ``importlib.import_module("...")`` call: a cycle hidden in a function is a cycle.
The one by-name lookup allowed is ARQ's CLI entry point (``ENTRY_POINT_ALIASES``).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("cache", "jobs", "worker")

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
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def imported_names(source: str, module: str, is_package: bool) -> list[tuple[str, bool]]:
    """Every name ``module`` imports, anywhere in its body (``from a import b`` gives
    ``a.b``), each with True when it is a by-name ``import_module`` call."""
    found: list[tuple[str, bool]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((alias.name, False) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            found.extend((f"{base}.{alias.name}", False) for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.args[0].value, True))
    return found


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        names = imported_names(path.read_text("utf-8"), module, path.name == "__init__.py")
        graph[module] = set()
        for name, by_name in names:
            target = resolve(name)
            if target is None or target == module:
                continue
            if by_name and (module, target) in ENTRY_POINT_ALIASES:
                continue  # the documented entry-point alias, looked up by name
            graph[module].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path ``[a, b, ..., a]``, or None (depth-first search)."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)) is not None:
            return cycle
    return None


def test_the_checker_counts_nested_and_by_name_imports() -> None:
    source = (
        "import importlib\n"
        "from . import sibling\n"
        "def f() -> None:\n"
        "    from worker.app import build\n"
        "    importlib.import_module('jobs.stats')\n"
    )
    names = imported_names(source, "worker.settings", is_package=False)
    assert {("worker.sibling", False), ("worker.app.build", False), ("jobs.stats", True)} <= set(
        names
    )


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_the_walk_finds_every_package() -> None:
    modules = project_modules()
    assert {"cache", "jobs", "worker", "worker.settings", "worker.app", "jobs.config"} <= set(
        modules
    )


def test_cache_jobs_and_worker_have_no_import_cycle() -> None:
    assert find_cycle(import_graph(project_modules())) is None


LEAF_PROBE = (
    "import sys, worker.settings\n"
    "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in "
    "{'arq', 'sentry_sdk', 'redis', 'jobs'} or m in {'cache.manager', 'cache.client', "
    "'worker.app'})))\n"
)


@pytest.mark.timeout(30)
def test_importing_settings_loads_neither_the_store_client_nor_arq_nor_sentry() -> None:
    """Only ``jobs.config`` (the job settings models) and its package may come along."""
    out = subprocess.run(
        [sys.executable, "-c", LEAF_PROBE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=25,
        check=True,
    )
    assert out.stdout.split() == ["jobs", "jobs.config"]


def test_the_arq_entry_point_alias_resolves_by_name() -> None:
    import worker.app
    import worker.settings

    assert worker.settings.WorkerSettings is worker.app.WorkerSettings
    with pytest.raises(AttributeError):
        _ = worker.settings.NoSuchName
