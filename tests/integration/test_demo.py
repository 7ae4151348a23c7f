"""``seen-worker demo --duration``: embedded server, a real worker process, simulated
downloads through ProgressPublisher; every download ends terminal and consistent."""

from __future__ import annotations

import io

from rich.console import Console

from worker.demo import run_demo


async def test_headless_demo_ends_consistent() -> None:
    out = io.StringIO()
    code = await run_demo(
        downloads=20, duration=4, workers=1, headless=True, console=Console(file=out, width=120)
    )
    text = out.getvalue()
    assert code == 0, text
    rows = {
        cells[1].strip(): cells[2].strip()
        for line in text.splitlines()
        if len(cells := line.split("│")) == 4
    }
    assert rows["stored = last update"] == "20/20"
    assert rows["queue left"] == "0"
    assert rows["verdict"] == "ok"
