"""The package layout, checked statically (``ast``, imports inside functions included).

- Arrows point down only: ``worker -> jobs -> cache``. ``cache`` imports neither ``jobs`` nor
  ``worker``; ``jobs`` never imports ``worker``.
- ``jobs/`` and ``worker/`` use the public API of cache's subpackages (``cache.catalog``,
  ``cache.download``, ``cache.coordination``), never a module behind it.
- No import cycle inside ``cache``, nor in the whole project (``worker.settings`` is a leaf;
  ARQ's ``worker.settings.WorkerSettings`` alias is a by-name lookup, see that module).
- Jobs and the worker do not reach through ``manager.download`` into its parts.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("cache", "jobs", "worker")
SUBPACKAGES = ("cache.catalog", "cache.download", "cache.coordination")
RANK = {"cache": 0, "jobs": 1, "worker": 2}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {
        module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))
    }


MODULES = all_modules()


def resolve(name: str) -> str | None:
    """The project module ``name`` stands for (an attribute's owner when it is no module)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def imports(module: str) -> Iterator[tuple[str, int]]:
    """``(imported module, line)`` for every import in ``module``, nested ones included;
    ``from pkg import name`` counts as importing ``pkg.name`` when that is a module."""
    path = MODULES[module]
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                yield f"{base}.{alias.name}", node.lineno


def edges(module: str) -> set[str]:
    found = set()
    for name, _ in imports(module):
        target = resolve(name)
        if target is not None and target != module:
            found.add(target)
    return found


def graph_of(nodes: set[str]) -> dict[str, set[str]]:
    return {n: edges(n) & nodes for n in nodes}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    nodes = set(graph)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
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
            if len(component) > 1 or node in graph[node]:
                found.append(sorted(component))

    for node in sorted(nodes):
        if node not in index:
            visit(node)
    return found


def test_the_checker_sees_every_package_and_nested_imports() -> None:
    assert {"cache", "cache.manager", "cache.download", "jobs.client", "worker.cli"} <= set(MODULES)
    # worker/cli.py imports inside functions; they must be counted
    nested = [n for n, _ in imports("worker.cli")]
    assert len(nested) > len(ast.parse(MODULES["worker.cli"].read_text()).body) // 4


def test_arrows_point_down_only() -> None:
    wrong = []
    for module in MODULES:
        rank = RANK[module.partition(".")[0]]
        for name, line in imports(module):
            top = name.partition(".")[0]
            if top in RANK and RANK[top] > rank:
                wrong.append(f"{module}:{line} imports {name}")
    assert wrong == []


def private_imports(source: str) -> list[tuple[int, str]]:
    """Imports of anything behind a cache subpackage's ``__init__`` (nested ones included)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            below = [s for s in SUBPACKAGES if name.startswith(s + ".")]
            if below and (resolve(name) != below[0] or name.split(".")[2].startswith("_")):
                found.append((node.lineno, name))
    return found


def test_the_private_import_check_sees_modules_and_private_names() -> None:
    source = (
        "from cache.download._models import ProgressUpdate\n"
        "from cache.download import DownloadCache, _calls\n"
        "def f() -> None:\n"
        "    import cache.catalog._entry\n"
        "    from cache.coordination import Lock\n"
    )
    assert private_imports(source) == [
        (1, "cache.download._models.ProgressUpdate"),
        (2, "cache.download._calls"),
        (4, "cache.catalog._entry"),
    ]


@pytest.mark.parametrize("package", ["jobs", "worker", "bench"])
def test_jobs_and_worker_use_only_public_cache_apis(package: str) -> None:
    private = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for line, name in private_imports(path.read_text(encoding="utf-8")):
            private.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert private == []


def test_the_cycle_finder_finds_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert sorted(cycles(graph)) == [["a", "b", "c"], ["e"]]


def test_cache_has_no_import_cycle() -> None:
    assert cycles(graph_of({m for m in MODULES if m.partition(".")[0] == "cache"})) == []


def test_project_has_no_import_cycle() -> None:
    assert cycles(graph_of(set(MODULES))) == []


def test_jobs_and_worker_do_not_reach_into_the_download_cache() -> None:
    """``manager.download.publish``/``drain``/``schedule_drains`` are the API; its parts
    (``.pending``, ``.layout``) are not."""
    reach = []
    for package in ("jobs", "worker"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if (
                    isinstance(node, ast.Attribute)
                    and node.attr in {"pending", "layout"}
                    and isinstance(node.value, ast.Attribute)
                    and node.value.attr == "download"
                ):
                    reach.append(f"{path.relative_to(ROOT)}:{node.lineno} .download.{node.attr}")
    assert reach == []
