"""The README's settings table is the one the settings model renders."""

from __future__ import annotations

import re
from pathlib import Path

from worker.config_doc import markdown

README = Path(__file__).resolve().parents[2] / "README.md"


def test_settings_table_is_current() -> None:
    text = README.read_text()
    match = re.search(r"<!-- settings-table -->\n(.*?)\n<!-- /settings-table -->", text, re.S)
    assert match is not None, "README lost its settings-table markers"
    assert match.group(1).strip() == markdown().strip(), (
        "README settings table is stale: run `python -m worker.config_doc --write`"
    )


def test_readme_shows_the_two_commands() -> None:
    text = README.read_text()
    assert "make run" in text
    assert "make test" in text


def test_benchmark_blocks_are_the_committed_full_run() -> None:
    """The README's benchmark table and targets are what ``bench/readme.py`` renders from
    ``bench/results/latest.json``, and that JSON is one full ``make bench`` run (not QUICK, not
    a partial run)."""
    from bench.readme import RESULTS, load, render

    text = README.read_text()
    assert render(load(RESULTS), text) == text, (
        "README's benchmark blocks differ from bench/results/latest.json: "
        "run `python -m bench.readme` after a full `make bench`"
    )
