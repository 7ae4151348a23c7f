"""``seen-worker demo``: embedded server, a real worker process, simulated downloads through
ProgressPublisher. With ``--duration`` every download ends terminal and consistent; without
(``make run``) it runs, dashboard and all, until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console

from tests.support.processes import ROOT
from tests.support.waiting import wait_until
from worker.demo import run_demo
from worker.processes import stop_process


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


DASHBOARD_LINE = re.compile(r"^dashboard: (http://\S+)", re.MULTILINE)
"""What the demo prints for a newcomer to open."""


def _demo_ids(downloads: list[dict[str, Any]]) -> set[int]:
    return {int(d["job_id"].removeprefix("demo-")) for d in downloads}


@pytest.mark.timeout(180)
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_make_run_demo_runs_until_stopped(tmp_path: Path, stop: signal.Signals) -> None:
    """``make run``: without ``--duration`` the demo and its dashboard keep running past the
    first round of downloads (new ones keep starting, never more than ``--downloads`` at a
    time) until SIGINT (Ctrl-C) or SIGTERM ends it, with exit 0, within a bound."""
    count = 3
    out = tmp_path / "demo.out"
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "COLUMNS": "200",
        "SEEN_DASHBOARD_ADDR": "127.0.0.1:0",  # never a port another test holds
        "SEEN_HTTP_ADDR": "127.0.0.1:0",
    }
    env.pop("SEEN_SETTINGS_FILE", None)
    demo = _start(["demo", "--downloads", str(count)], env, out)
    worker_pids: set[int] = set()
    try:

        async def url_printed() -> bool:
            assert demo.poll() is None, out.read_text()
            return DASHBOARD_LINE.search(out.read_text()) is not None

        await wait_until(url_printed, 60, "the dashboard URL")
        found = DASHBOARD_LINE.search(out.read_text())
        assert found is not None
        url = found.group(1)
        seen: set[int] = set()
        async with httpx.AsyncClient(base_url=url, timeout=10) as c:

            async def overview() -> dict[str, Any]:
                r = await c.get("/api/overview")
                assert r.status_code == 200, r.text
                data: dict[str, Any] = r.json()
                return data

            async def downloads_past_two_rounds() -> bool:
                assert demo.poll() is None, out.read_text()  # still running
                r = await c.get("/api/downloads")
                assert r.status_code == 200, r.text
                active = r.json()["downloads"]
                assert len(active) <= count  # bounded: never more than --downloads at a time
                seen.update(_demo_ids(active))
                worker_pids.update(w["pid"] for w in (await overview())["workers"])
                # ids 0..count-1 are the first round, count..2*count-1 the second
                return max(seen, default=-1) >= 2 * count

            await wait_until(downloads_past_two_rounds, 120, "downloads of a third round", 0.5)
            if stop is signal.SIGINT:  # the page itself still answers
                assert (await c.get("/downloads")).status_code == 200
        assert demo.poll() is None and "demo summary" not in out.read_text()
        demo.send_signal(stop)
        code = await asyncio.to_thread(demo.wait, 45)  # STOP_GRACE_S for the workers + a margin
        text = out.read_text()
        assert code == 0, text
        assert "demo summary" in text and "downloads started" in text, text
        assert worker_pids and not any(_alive(pid) for pid in worker_pids)
    finally:
        if demo.poll() is None:
            stop_process(demo, grace=30)
        for pid in worker_pids:  # the demo's workers, should the demo have failed to stop them
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _start(args: list[str], env: dict[str, str], out: Path) -> subprocess.Popen[bytes]:
    """``seen-worker ARGS`` in the background, its output in ``out``."""
    with out.open("wb") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "worker.cli", *args],
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"
