"""``seen-worker watch [--user U]``: live progress bars of the active downloads.

The pure parts, ``WatchState`` (folds events into rows, monotonic by seq like the store) and
``render`` (a rich table), are separate from the I/O loop ``follow`` (snapshot, then blocking
reads of every shard's event stream) so each can be tested alone. Ctrl-C stops the loop; the
live display restores the terminal on the way out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from rich.console import Console
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table

from cache.clock import wall_s
from cache.config import CacheConfig
from cache.download import DownloadProgress
from cache.keys import validate_id
from cache.manager import CacheManager
from cache.unreadable import Unreadable

_UNITS = ("B", "KB", "MB", "GB", "TB")


def format_bytes(count: int) -> str:
    """``1536000`` -> ``"1.5 MB"`` (decimal units, as download sizes are shown)."""
    value = float(count)
    for unit in _UNITS:
        if value < 1000 or unit == _UNITS[-1]:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")  # pragma: no cover


def format_eta(seconds: int | None) -> str:
    """``125`` -> ``"2m05s"``; unknown -> ``"-"``."""
    if seconds is None:
        return "-"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def format_speed(progress: DownloadProgress) -> str:
    """Both views of the speed: megabits (the compatibility view) and bytes per second."""
    if not progress.speed:
        return "-"
    return f"{progress.speed_mbps:.2f} Mbps ({format_bytes(progress.speed)}/s)"


@dataclass
class WatchState:
    """The rows on screen. ``linger``: seconds a finished download stays visible;
    ``stale_after``: seconds without an update before an unfinished one is dropped."""

    user_id: str | None = None
    linger: float = 10.0
    stale_after: float = 60.0
    rows: dict[str, DownloadProgress] = field(default_factory=dict)
    events: int = 0
    unreadable: int = 0
    """Entries the last snapshot skipped because they could not be read (logged with keys)."""

    def apply(self, progress: DownloadProgress) -> bool:
        """Fold one state in; False when filtered out, older, or the row is already final."""
        if self.user_id is not None and progress.user_id != self.user_id:
            return False
        current = self.rows.get(progress.job_id)
        if current is not None and (current.terminal or progress.seq <= current.seq):
            return False
        self.rows[progress.job_id] = progress
        self.events += 1
        return True

    def expire(self, now: float) -> bool:
        """Drop finished rows older than ``linger`` and silent ones; True when any went."""
        gone = [
            job
            for job, p in self.rows.items()
            if now - p.updated_at.timestamp() > (self.linger if p.terminal else self.stale_after)
        ]
        for job in gone:
            del self.rows[job]
        return bool(gone)

    def visible(self) -> list[DownloadProgress]:
        """Active downloads first, then finished ones; stable order (by job id) within each."""
        return sorted(self.rows.values(), key=lambda p: (p.terminal, p.job_id))


_STATUS_STYLE = {
    "downloading": "cyan",
    "queued": "dim",
    "paused": "yellow",
    "completed": "green",
    "failed": "red",
    "cancelled": "magenta",
}


def render(state: WatchState, max_rows: int = 40) -> Table:
    """The table of downloads: bar, percent, bytes, speed, ETA."""
    rows = state.visible()
    active = sum(not p.terminal for p in rows)
    who = f" of user {state.user_id}" if state.user_id else ""
    table = Table(title=f"seen downloads{who}: {active} active", expand=True, title_justify="left")
    for name, justify in (
        ("download", "left"),
        ("user", "left"),
        ("status", "left"),
        ("progress", "left"),
        ("%", "right"),
        ("done / total", "right"),
        ("speed", "right"),
        ("ETA", "right"),
    ):
        table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for p in rows[:max_rows]:
        style = _STATUS_STYLE.get(p.status.value, "")
        total = format_bytes(p.bytes_total) if p.bytes_total else "?"
        table.add_row(
            p.job_id,
            p.user_id,
            f"[{style}]{p.status.value}[/]" if style else p.status.value,
            ProgressBar(total=100, completed=p.progress_percent, width=28),
            f"{p.progress_percent:5.1f}",
            f"{format_bytes(p.bytes_done)} / {total}",
            format_speed(p),
            format_eta(p.eta_seconds),
        )
    notes = []
    if len(rows) > max_rows:
        notes.append(f"... and {len(rows) - max_rows} more")
    elif not rows:
        notes.append("no active downloads (waiting for progress events)")
    if state.unreadable:
        noun = "entry" if state.unreadable == 1 else "entries"
        notes.append(f"{state.unreadable} unreadable {noun} skipped (the log names their keys)")
    table.caption = "; ".join(notes) or None
    return table


async def load_snapshot(manager: CacheManager, state: WatchState) -> None:
    """Fold in the current active downloads; an entry that cannot be read is skipped, counted
    in ``state.unreadable`` and logged with its key (the others are shown)."""
    skipped = Unreadable()
    for progress in await manager.download.get_active_downloads(state.user_id, unreadable=skipped):
        state.apply(progress)
    state.unreadable = skipped.total


async def follow(
    manager: CacheManager,
    state: WatchState,
    on_change: Callable[[], None],
    *,
    stop: asyncio.Event | None = None,
    block_ms: int = 500,
) -> None:
    """Load the current downloads, then fold in live events until ``stop`` is set.

    The stream positions are taken before the snapshot, so nothing between the two is missed
    (an event already in the snapshot is ignored by ``WatchState.apply``).
    """
    follower = manager.download.follower(block_ms=block_ms)
    await follower.start()
    await load_snapshot(manager, state)
    on_change()
    while stop is None or not stop.is_set():
        changed = False
        for event in await follower.read():
            changed = state.apply(event.progress) or changed
        if state.expire(wall_s()) or changed:
            on_change()


async def run_watch(
    config: CacheConfig,
    user_id: str | None = None,
    *,
    once: bool = False,
    console: Console | None = None,
) -> int:
    """The ``watch`` command: a live table until Ctrl-C (``once``: print it and return)."""
    if user_id is not None:
        validate_id(user_id, "user_id")
    out = console or Console()
    state = WatchState(user_id)
    async with await CacheManager.connect(config) as manager:
        if once:
            await load_snapshot(manager, state)
            out.print(render(state))
            return 0
        with Live(render(state), console=out, refresh_per_second=4) as live:
            await follow(manager, state, lambda: live.update(render(state)))
    return 0
