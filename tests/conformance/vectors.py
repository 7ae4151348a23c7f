"""The shared conformance vectors (tests/conformance/vectors/*.json), read by the Python, Go
and Node producers' tests alike. Each file says what it holds in its ``about`` field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

VECTORS = Path(__file__).resolve().parent / "vectors"


def load(name: str) -> Any:
    """One vector file, e.g. ``load("shards")``."""
    return json.loads((VECTORS / f"{name}.json").read_text(encoding="utf-8"))


def names(items: list[dict[str, Any]], key: str = "name") -> list[str]:
    """Test ids for parametrized vectors: their name, or their ``why``."""
    return [str(item.get(key) or item.get("why") or index) for index, item in enumerate(items)]
