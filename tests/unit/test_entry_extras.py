"""``seen-worker`` names the extra a command needs (the base install has none of them)."""

from __future__ import annotations

import importlib.util
import re
import tomllib

import pytest

from tests.support.imports import ROOT
from worker.entry import EXTRAS, missing_extra, needed_extra


@pytest.mark.parametrize(
    ("argv", "extra"),
    [
        (["run"], "worker"),
        (["run", "--embedded"], "worker"),
        (["health", "--json"], "worker"),
        (["dashboard", "--addr", "127.0.0.1:0"], "dashboard"),
        (["demo"], "dashboard"),
        (["demo", "--no-dashboard"], "worker"),
    ],
)
def test_each_command_needs_its_extra(argv: list[str], extra: str) -> None:
    assert needed_extra(argv) == extra


def test_with_everything_installed_nothing_is_missing() -> None:
    assert missing_extra(["dashboard"]) is None


def names(requirements: list[str]) -> set[str]:
    return {re.match(r"[A-Za-z0-9_.-]+", r).group(0).lower() for r in requirements}  # type: ignore[union-attr]


def test_the_extras_modules_match_pyproject() -> None:
    """Each module the check looks for is installed here (make installs every extra) and
    is the distribution its extra lists, and none is in the base install."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    base = names(project["dependencies"])
    for extra, modules in EXTRAS.items():
        for module in modules:
            assert importlib.util.find_spec(module) is not None
            assert module.replace("_", "-") in names(extras[extra]), f"{module} not in [{extra}]"
            assert module.replace("_", "-") not in base
