"""One wall clock: only cache/clock.py reads the time of day in the product packages."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WALL_CLOCK_READ = re.compile(
    r"\btime\.time(_ns)?\(|\bdatetime\.(now|utcnow|today)\(|\bdate\.today\("
)


def test_only_the_clock_module_reads_the_wall_clock() -> None:
    readers = [
        f"{path.relative_to(ROOT)}:{number}"
        for package in ("cache", "jobs", "worker")
        for path in sorted((ROOT / package).rglob("*.py"))
        if path.relative_to(ROOT).as_posix() != "cache/clock.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if WALL_CLOCK_READ.search(line)
    ]
    assert readers == [], "read the wall clock through cache.clock"


def test_the_clock_module_does_read_it() -> None:
    assert WALL_CLOCK_READ.search((ROOT / "cache" / "clock.py").read_text())
