"""The packages' public faces are used: ``cache`` exports what the README documents and nothing
else, ``jobs`` the producer API and the job decorators, and every exported name is imported
somewhere outside its package (the docs, the README, the worker, the tests or the benchmarks).
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

from tests.support.imports import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
CODE_DIRS = ("cache", "jobs", "worker", "tests", "bench")
PYTHON_BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def imported_from(package: str, source: str) -> set[str]:
    """Names ``source`` imports from ``package`` (``from package import a, b``) or reads as
    ``package.name`` after ``import package``."""
    names: set[str] = set()
    try:
        tree = ast.parse(source)
    except SyntaxError:  # a doc block that is not a whole program: read its import lines
        lines = re.findall(rf"^from {package} import ([^\n(]+)$", source, re.M)
        return {n.strip() for line in lines for n in line.split(",")}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == package and node.level == 0:
            names |= {a.name for a in node.names}
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == package
        ):
            names.add(node.attr)
    return names


def doc_blocks(path: Path) -> list[str]:
    return PYTHON_BLOCK.findall(path.read_text(encoding="utf-8"))


def used_outside(package: str) -> set[str]:
    used: set[str] = set()
    for path in DOCS:
        for block in doc_blocks(path):
            used |= imported_from(package, block)
    for folder in CODE_DIRS:
        for path in (ROOT / folder).rglob("*.py"):
            if path.relative_to(ROOT).parts[0] == package:
                continue  # the package itself does not count
            if path.name == Path(__file__).name:
                continue
            used |= imported_from(package, path.read_text(encoding="utf-8"))
    return used


@pytest.mark.parametrize("package", ["cache", "jobs"])
def test_every_exported_name_resolves_and_is_imported_somewhere(package: str) -> None:
    module = importlib.import_module(package)
    exported = set(module.__all__)
    assert exported == set(module._API)
    for name in exported:
        assert getattr(module, name) is not None
    unused = exported - used_outside(package)
    assert not unused, f"{package} exports names nothing imports: {sorted(unused)}"


def test_cache_exports_exactly_what_the_readme_documents() -> None:
    import cache

    documented: set[str] = set()
    for block in doc_blocks(ROOT / "README.md"):
        documented |= imported_from("cache", block)
    assert documented == set(cache.__all__)


def test_jobs_exports_the_producer_api_and_the_decorators() -> None:
    import jobs

    assert {
        "ProgressPublisher",
        "enqueue",
        "enqueue_job",
        "enqueue_update",
        "JobHandle",
        "JobContext",
        "JobError",
        "job",
        "periodic",
        "QueueLayout",
    } <= set(jobs.__all__)
    documented: set[str] = set()
    for path in DOCS:
        for block in doc_blocks(path):
            documented |= imported_from("jobs", block)
    assert set(jobs.__all__) <= documented, "every jobs export is documented with an import"


def test_the_checker_reads_imports_and_attributes() -> None:
    source = "from cache import A, B\nimport cache\nx = cache.C\nfrom cache.keys import D\n"
    assert imported_from("cache", source) == {"A", "B", "C"}
    assert imported_from("cache", "from cache import A, B\nawait x\n") == {"A", "B"}
