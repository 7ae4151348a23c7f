"""The package layout, checked statically (``ast``, imports inside functions included).

- Arrows point down only: ``dashboard -> worker -> jobs -> cache``. ``cache`` imports neither
  ``jobs`` nor ``worker``; ``jobs`` never imports ``worker``; nothing imports ``dashboard`` but
  the CLI (``worker.cli`` starts it: ``seen-worker dashboard`` and the demo's dashboard).
- ``jobs/`` and ``worker/`` use the public API of cache's subpackages (``cache.catalog``,
  ``cache.download``, ``cache.coordination``), never a module behind it.
- No import cycle inside ``cache`` (the whole project: ``test_import_cycles.py``).
- Jobs and the worker do not reach through ``manager.download`` into its parts.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

import pytest

from tests.support.imports import (
    ROOT,
    cycles,
    import_graph,
    module_imports,
    project_modules,
    resolve,
)

SUBPACKAGES = ("cache.catalog", "cache.download", "cache.coordination")
RANK = {"cache": 0, "jobs": 1, "worker": 2, "dashboard": 3}
DASHBOARD_STARTERS = {"worker.cli"}
"""The one module below ``dashboard`` that may import it (inside its command functions)."""
MODULES = project_modules()


def imports(module: str) -> Iterator[tuple[str, int]]:
    """``(imported name, line)`` for every import in ``module``, nested ones included."""
    for name, line, _by_name in module_imports(MODULES, module):
        yield name, line


def graph_of(nodes: set[str]) -> dict[str, set[str]]:
    return import_graph(MODULES, nodes)


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
            if top == "dashboard" and module in DASHBOARD_STARTERS:
                continue
            if top in RANK and RANK[top] > rank:
                wrong.append(f"{module}:{line} imports {name}")
    assert wrong == []


def test_only_the_cli_imports_the_dashboard() -> None:
    importers = {
        module
        for module in MODULES
        if not module.startswith("dashboard")
        for name, _ in imports(module)
        if name.partition(".")[0] == "dashboard"
    }
    assert importers == DASHBOARD_STARTERS


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
            if below and (resolve(name, MODULES) != below[0] or name.split(".")[2].startswith("_")):
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


@pytest.mark.parametrize("package", ["jobs", "worker", "dashboard", "bench"])
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


def test_jobs_and_worker_do_not_reach_into_the_download_cache() -> None:
    """``manager.download.publish``/``drain``/``schedule_drains`` are the API; its parts
    (``.pending``, ``.layout``) are not."""
    reach = []
    for package in ("jobs", "worker", "dashboard"):
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
