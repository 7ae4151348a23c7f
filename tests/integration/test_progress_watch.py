"""``seen-worker watch``: the follow loop sees live events; the command prints and quits."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import redis
from rich.console import Console

from cache.config import CacheConfig
from cache.manager import CacheManager
from tests.conftest import ROOT, TestServer
from tests.support.updates import upd
from tests.support.waiting import wait_until
from worker.watch import WatchState, follow, run_watch


async def test_follow_loop_snapshot_then_live_events(manager: CacheManager) -> None:
    dl = manager.download
    await dl.set_progress(upd("dl-before", 1, user="u1"))
    await dl.set_progress(upd("dl-other", 1, user="u2"))
    view = WatchState(user_id="u1")
    renders = 0

    def on_change() -> None:
        nonlocal renders
        renders += 1

    stop = asyncio.Event()
    task = asyncio.create_task(follow(manager, view, on_change, stop=stop, block_ms=100))

    async def has(job: str, seq: int) -> bool:
        return job in view.rows and view.rows[job].seq == seq

    await wait_until(lambda: has("dl-before", 1), 5, "dl-before at seq 1")
    for seq in range(2, 6):
        await dl.set_progress(upd("dl-live", seq, user="u1"))
    await dl.set_progress(upd("dl-before", 2, "completed", user="u1"))
    await dl.set_progress(upd("dl-other", 2, user="u2"))
    await wait_until(lambda: has("dl-live", 5), 5, "dl-live at seq 5")
    await wait_until(lambda: has("dl-before", 2), 5, "dl-before at seq 2")
    stop.set()
    await asyncio.wait_for(task, 5)
    assert "dl-other" not in view.rows  # another user's
    assert view.rows["dl-before"].terminal
    assert renders >= 2


async def test_watch_once_prints_the_table(
    manager: CacheManager, cache_config: CacheConfig
) -> None:
    await manager.download.set_progress(upd("dl-7", 3, done=500, total=1000, user="u1"))
    console = Console(record=True, width=160, color_system=None)
    assert await run_watch(cache_config, "u1", once=True, console=console) == 0
    text = console.export_text()
    assert "dl-7" in text and "50.0" in text


def following(server: TestServer, proc: subprocess.Popen[bytes], within: float = 30.0) -> None:
    """Until the watch process follows the streams (its XREAD is on the server): a Ctrl-C
    before that would land in its imports, which a loaded machine can make last seconds."""
    client = redis.Redis.from_url(server.url)
    deadline = time.monotonic() + within
    try:
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            clients: list[dict[str, str]] = client.client_list()  # type: ignore[assignment]
            if any(c.get("cmd") == "xread" for c in clients):
                return
            time.sleep(0.05)
    finally:
        client.close()
    raise AssertionError(f"watch did not follow the streams within {within}s")


def test_watch_command_exits_cleanly_on_ctrl_c(server: TestServer) -> None:
    env = {**os.environ, "SEEN_CACHE_ADDR": server.url, "TERM": "dumb", "COLUMNS": "120"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker.cli", "watch"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        following(server, proc)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err.decode()
    assert b"Traceback" not in err
    assert b"seen downloads" in out


def test_watch_rejects_a_bad_user(server: TestServer) -> None:
    env = {**os.environ, "SEEN_CACHE_ADDR": server.url}
    done = subprocess.run(
        [sys.executable, "-m", "worker.cli", "watch", "--once", "--user", "bad*user"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2 and b"user_id" in done.stderr
