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
