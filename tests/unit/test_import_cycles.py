"""The import graph of ``cache``, ``jobs`` and ``worker`` has no cycle, and settings is a leaf.

Modules are found by walking the package folders, so moves and new subpackages are covered
without editing this file. Every import counts, also those inside functions, and so does a
literal ``importlib.import_module("...")`` call: a cycle hidden in a function is a cycle.
The one by-name lookup allowed is ARQ's CLI entry point (``ENTRY_POINT_ALIASES``).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.imports import (
    ROOT,
    cycles,
    import_graph,
    imported_names,
    project_modules,
)


def test_the_checker_counts_nested_and_by_name_imports() -> None:
    source = (
        "import importlib\n"
        "from . import sibling\n"
        "def f() -> None:\n"
        "    from worker.app import build\n"
        "    importlib.import_module('jobs.stats')\n"
    )
    names = {(n, by_name) for n, _line, by_name in imported_names(source, "worker.settings", False)}
    assert {("worker.sibling", False), ("worker.app.build", False), ("jobs.stats", True)} <= names


def test_the_alias_is_exempt_only_as_a_by_name_lookup() -> None:
    modules = project_modules()
    graph = import_graph(modules, {"worker.settings", "worker.app"})
    assert "worker.app" not in graph["worker.settings"]  # only looked up by name
    assert "worker.settings" in graph["worker.app"]


def test_the_walk_finds_every_package() -> None:
    modules = project_modules()
    assert {"cache", "jobs", "worker", "worker.settings", "worker.app", "jobs.config"} <= set(
        modules
    )


def test_cache_jobs_and_worker_have_no_import_cycle() -> None:
    assert cycles(import_graph(project_modules())) == []


LEAF_PROBE = (
    "import sys, worker.settings\n"
    "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in "
    "{'arq', 'sentry_sdk', 'redis', 'jobs'} or m in {'cache.manager', 'cache.client', "
    "'worker.app'})))\n"
)


@pytest.mark.timeout(30)
def test_importing_settings_loads_neither_the_store_client_nor_arq_nor_sentry() -> None:
    """Only ``jobs.config`` (the job settings models), ``jobs.wire.layout`` (the queue's key
    layout, pure) and their packages may come along."""
    out = subprocess.run(
        [sys.executable, "-c", LEAF_PROBE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=25,
        check=True,
    )
    assert out.stdout.split() == ["jobs", "jobs.config", "jobs.wire", "jobs.wire.layout"]


def test_the_arq_entry_point_alias_resolves_by_name() -> None:
    import worker.app
    import worker.settings

    assert worker.settings.WorkerSettings is worker.app.WorkerSettings
    with pytest.raises(AttributeError):
        _ = worker.settings.NoSuchName
