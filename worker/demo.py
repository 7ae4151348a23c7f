"""``seen-worker demo`` (the README's ``make run``): an embedded server, real worker processes
and a simulated download pipeline publishing through ``ProgressPublisher``, shown live.

Without ``--duration`` (``make run``) it runs until Ctrl-C or SIGTERM: the simulation is
``continuous``, starting a new download whenever one ends (at most ``--downloads`` at a time, so
the demo's memory and the store's active keys stay bounded; finished downloads expire from the
store after ``ttl.download_terminal``), and the dashboard beside it keeps serving. The stop
is bounded (the workers get ``STOP_GRACE_S``, then SIGKILL) and exits 0 with a summary.

With ``--duration S`` (headless) it prints a summary instead and exits 0 only when every
download reached a terminal state, the queue drained and every stored state equals the last
update published for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from cache.clock import wall_s
from cache.manager import CacheManager
from jobs.client import ProgressPublisher
from worker.embedded import EmbeddedServer
from worker.heartbeat import read_beats
from worker.processes import stop_processes
from worker.settings import Settings, load_settings
from worker.simulation import Simulation
from worker.watch import WatchState, follow, render

if TYPE_CHECKING:
    from worker.http.dashboard.server import DashboardServer

TICK_S = 0.5
READY_TIMEOUT_S = 30.0
DRAIN_TIMEOUT_S = 30.0
STOP_GRACE_S = 25.0
LINGER_S = 10.0
"""Seconds a finished download stays on the live screen of a continuous demo."""


@dataclass
class DemoReport:
    statuses: dict[str, int]
    finished: int
    published: int
    drain_jobs: int
    consistent: int
    downloads: int
    queue_left: int
    settle_s: float

    @property
    def ok(self) -> bool:
        return self.finished == self.consistent == self.downloads and self.queue_left == 0

    def render(self) -> Table:
        table = Table(title="demo summary", show_header=False, title_justify="left")
        states = ", ".join(f"{n} {s}" for s, n in sorted(self.statuses.items()))
        table.add_row("downloads", f"{self.downloads} ({states})")
        table.add_row("updates published", f"{self.published:,}")
        ratio = self.published / max(1, self.drain_jobs)
        table.add_row("apply jobs enqueued", f"{self.drain_jobs:,} ({ratio:.1f} updates per job)")
        table.add_row("stored = last update", f"{self.consistent}/{self.downloads}")
        table.add_row("queue left", str(self.queue_left))
        table.add_row("settled after last update", f"{self.settle_s:.2f} s")
        table.add_row("verdict", "ok" if self.ok else "FAILED")
        return table


@dataclass
class RunSummary:
    """What a continuous demo did before it was stopped."""

    statuses: dict[str, int]
    started: int
    running: int
    published: int
    drain_jobs: int
    seconds: float

    def render(self) -> Table:
        table = Table(title="demo summary", show_header=False, title_justify="left")
        states = ", ".join(f"{n} {s}" for s, n in sorted(self.statuses.items()))
        table.add_row("ran for", f"{self.seconds:.0f} s")
        table.add_row("downloads started", f"{self.started} ({states})")
        table.add_row("running when stopped", str(self.running))
        table.add_row("updates published", f"{self.published:,}")
        table.add_row("apply jobs enqueued", f"{self.drain_jobs:,}")
        return table


def start_workers(addr: str, count: int, log_dir: Path) -> list[subprocess.Popen[bytes]]:
    """``count`` real ``seen-worker run`` processes against ``addr``."""
    env = dict(os.environ, SEEN_CACHE_ADDR=addr, SEEN_LOG_LEVEL="WARNING")
    env.pop("SEEN_QUEUE_ADDR", None)
    procs = []
    for i in range(count):
        with (log_dir / f"worker-{i}.log").open("wb") as log:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "worker.cli", "run"],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # Ctrl-C is the demo's to handle, not theirs
                )
            )
    return procs


def read_logs(log_dir: Path, tail: int = 2000) -> str:
    return "\n".join(p.read_text(errors="replace")[-tail:] for p in log_dir.glob("*.log"))


def stop_workers(procs: list[subprocess.Popen[bytes]]) -> None:
    stop_processes(procs, grace=STOP_GRACE_S)


async def wait_for_workers(
    manager: CacheManager, count: int, stop: asyncio.Event | None = None
) -> None:
    """Until ``count`` workers beat as running (or ``stop`` is set: Ctrl-C during start-up)."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if stop is not None and stop.is_set():
            return
        beats = await read_beats(manager.client, manager.keys)
        if sum(b.state == "running" for b in beats) >= count:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{count} worker(s) did not start within {READY_TIMEOUT_S:.0f}s")


async def produce(
    sim: Simulation, publisher: ProgressPublisher, stop: asyncio.Event, counter: dict[str, int]
) -> None:
    """Publish the simulation's updates every tick until it finishes or ``stop`` is set."""
    while not sim.finished and not stop.is_set():
        updates = sim.step(wall_s())
        if updates:
            await publisher.publish_many(updates)
            counter["published"] += len(updates)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), TICK_S)


async def settle(
    manager: CacheManager, sim: Simulation, queue_name: str, wait: float = DRAIN_TIMEOUT_S
) -> tuple[int, int]:
    """Wait until every stored state equals the last update; (consistent, queue left)."""
    deadline = time.monotonic() + wait
    consistent = queue_left = 0
    while time.monotonic() < deadline:
        stored = await manager.download.get_many([d.job_id for d in sim.downloads])
        consistent = sum(
            s is not None and d.last is not None and (s.seq, s.status) == (d.last.seq, d.status)
            for d, s in zip(sim.downloads, stored, strict=True)
        )
        queue_left = int(await manager.client.zcard(queue_name))
        if consistent == len(sim.downloads) and queue_left == 0:
            break
        await asyncio.sleep(0.1)
    return consistent, queue_left


def stats_line(sim: Simulation, published: int, publisher: ProgressPublisher, start: float) -> Text:
    running = sum(not d.finished for d in sim.downloads)
    finished = sim.started - running
    return Text(
        f"{time.monotonic() - start:5.1f}s  {running} running  {finished}/{sim.started} finished  "
        f"{published:,} updates published  {publisher.enqueued:,} apply jobs  (Ctrl-C to stop)",
        style="dim",
    )


async def run_headless(
    manager: CacheManager,
    settings: Settings,
    sim: Simulation,
    publisher: ProgressPublisher,
    interrupted: asyncio.Event,
) -> DemoReport:
    """Every download to its end, then wait until the stored states equal the last updates."""
    counter = {"published": 0}
    await produce(sim, publisher, interrupted, counter)
    last_publish = time.monotonic()
    wait = 1.0 if interrupted.is_set() else DRAIN_TIMEOUT_S
    consistent, queue_left = await settle(manager, sim, settings.queue.name, wait)
    return DemoReport(
        statuses=dict(Counter(d.status.value for d in sim.downloads)),
        finished=sum(d.finished for d in sim.downloads),
        published=counter["published"],
        drain_jobs=publisher.enqueued,
        consistent=consistent,
        downloads=len(sim.downloads),
        queue_left=queue_left,
        settle_s=time.monotonic() - last_publish,
    )


async def run_live(
    manager: CacheManager,
    sim: Simulation,
    publisher: ProgressPublisher,
    console: Console,
    interrupted: asyncio.Event,
) -> RunSummary:
    """The continuous simulation on a live table, until ``interrupted``."""
    start = time.monotonic()
    counter = {"published": 0}
    state = WatchState(linger=LINGER_S)
    view_stop = asyncio.Event()
    with Live(console=console, refresh_per_second=4) as live:

        def redraw() -> None:
            line = stats_line(sim, counter["published"], publisher, start)
            live.update(Group(render(state, max_rows=30), line))

        view = asyncio.create_task(follow(manager, state, redraw, stop=view_stop))
        try:
            await produce(sim, publisher, interrupted, counter)
        finally:
            view_stop.set()
            await view
    return RunSummary(
        statuses=dict(sim.status_counts()),
        started=sim.started,
        running=sum(not d.finished for d in sim.downloads),
        published=counter["published"],
        drain_jobs=publisher.enqueued,
        seconds=time.monotonic() - start,
    )


async def run_pipeline(
    settings: Settings,
    sim: Simulation,
    workers: int,
    headless: bool,
    console: Console,
    interrupted: asyncio.Event,
) -> DemoReport | RunSummary:
    async with await CacheManager.connect(settings) as manager:
        await wait_for_workers(manager, workers, interrupted)
        publisher = ProgressPublisher(manager, queue_name=settings.queue.name)
        if headless:
            return await run_headless(manager, settings, sim, publisher, interrupted)
        return await run_live(manager, sim, publisher, console, interrupted)


async def start_dashboard(settings: Settings, out: Console) -> DashboardServer | None:
    """The dashboard beside the demo (``dashboard.addr``, else any free loopback port)."""
    from worker.http.dashboard.server import DashboardServer

    for addr in (settings.dashboard.addr, "127.0.0.1:0"):
        local = load_settings(cache={"addr": settings.cache.addr}, dashboard={"addr": addr})
        server = DashboardServer(local)
        try:
            await server.start()
        except (OSError, RuntimeError) as exc:
            out.print(f"[dim]dashboard not on {addr}: {exc}[/dim]")
            await server.aclose()
            continue
        out.print(f"dashboard: [bold]{server.url}[/bold] (live downloads: {server.url}downloads)")
        return server
    return None


async def run_demo(
    downloads: int = 24,
    duration: float = 20.0,
    workers: int = 1,
    headless: bool = False,
    seed: int = 7,
    console: Console | None = None,
    with_dashboard: bool = True,
) -> int:
    """The whole demo; returns the exit code. Headless: until every download ended; else
    (``make run``) a continuous simulation until SIGINT or SIGTERM."""
    out = console or Console()
    sim = Simulation(downloads, duration, seed=seed, continuous=not headless)
    stops = (signal.SIGINT, signal.SIGTERM)
    with EmbeddedServer() as server, tempfile.TemporaryDirectory(prefix="seen-demo-") as tmp:
        out.print(
            f"embedded server {Path(server.binary).name} on {server.addr}; "
            f"{workers} worker(s); {downloads} downloads"
            + ("" if headless else " at a time, new ones as they end (Ctrl-C to stop)")
        )
        settings = load_settings(cache={"addr": server.addr})
        procs = start_workers(server.addr, workers, Path(tmp))
        dashboard: DashboardServer | None = None
        interrupted = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in stops:
            loop.add_signal_handler(sig, interrupted.set)
        try:
            dashboard = await start_dashboard(settings, out) if with_dashboard else None
            report = await run_pipeline(settings, sim, workers, headless, out, interrupted)
        except TimeoutError as exc:
            logs = await asyncio.to_thread(read_logs, Path(tmp))
            out.print(f"[red]{exc}[/red]\n{logs}")
            return 1
        finally:
            for sig in stops:
                loop.remove_signal_handler(sig)
            if dashboard is not None:
                await dashboard.aclose()
            await asyncio.to_thread(stop_workers, procs)
    out.print(report.render())
    if isinstance(report, RunSummary):
        return 0
    if interrupted.is_set():
        out.print("interrupted: stopped before every download finished")
        return 0
    return 0 if report.ok else 1
