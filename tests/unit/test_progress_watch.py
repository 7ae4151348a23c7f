"""The live view's pure parts: folding states in, expiry, ordering, rendering, formatting."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.console import Console

from cache.download import DownloadProgress, DownloadStatus
from worker.watch import WatchState, format_bytes, format_eta, format_speed, render

NOW = 1_800_000_000.0


def state(
    job: str,
    seq: int,
    status: str = "downloading",
    *,
    user: str = "u1",
    age: float = 0,
    done: int = 250,
    total: int = 1000,
    speed: int = 0,
    eta: int | None = None,
) -> DownloadProgress:
    return DownloadProgress(
        job_id=job,
        user_id=user,
        status=DownloadStatus(status),
        bytes_done=done,
        bytes_total=total,
        progress_percent=done * 100 / total if total else 0.0,
        speed=speed,
        eta_seconds=eta,
        seq=seq,
        updated_at=datetime.fromtimestamp(NOW - age, tz=UTC),
    )


def test_apply_is_monotonic_and_terminal_is_final() -> None:
    view = WatchState()
    assert view.apply(state("a", 2))
    assert not view.apply(state("a", 1))  # older
    assert not view.apply(state("a", 2))  # same
    assert view.apply(state("a", 5, "completed"))
    assert not view.apply(state("a", 9))  # a late update never revives it
    assert view.rows["a"].status is DownloadStatus.COMPLETED and view.events == 2


def test_user_filter() -> None:
    view = WatchState(user_id="alice")
    assert not view.apply(state("a", 1, user="bob"))
    assert view.apply(state("b", 1, user="alice"))
    assert list(view.rows) == ["b"]


def test_expire_finished_after_linger_and_silent_after_stale_after() -> None:
    view = WatchState(linger=10, stale_after=60)
    view.apply(state("done-old", 1, "completed", age=11))
    view.apply(state("done-new", 1, "failed", age=5))
    view.apply(state("silent", 1, age=61))
    view.apply(state("live", 1, age=30))
    assert view.expire(NOW)
    assert sorted(view.rows) == ["done-new", "live"]
    assert not view.expire(NOW)


def test_visible_order_active_first_then_by_id() -> None:
    view = WatchState()
    for job, status in (("c", "completed"), ("b", "downloading"), ("a", "paused"), ("d", "queued")):
        view.apply(state(job, 1, status))
    assert [p.job_id for p in view.visible()] == ["a", "b", "d", "c"]


def test_render_shows_bars_speed_eta() -> None:
    view = WatchState(user_id="u1")
    view.apply(state("dl-1", 3, done=450, total=1000, speed=1_250_000, eta=125))
    view.apply(state("dl-2", 1, "completed", done=1000))
    console = Console(record=True, width=160, color_system=None)
    console.print(render(view))
    text = console.export_text()
    assert "seen downloads of user u1: 1 active" in text
    assert "dl-1" in text and "45.0" in text and "10.00 Mbps (1.2 MB/s)" in text
    assert "2m05s" in text and "completed" in text and "100.0" in text


def test_render_caps_rows_and_says_when_empty() -> None:
    console = Console(record=True, width=160, color_system=None)
    console.print(render(WatchState()))
    assert "no active downloads" in console.export_text()
    view = WatchState()
    for i in range(12):
        view.apply(state(f"dl-{i:02d}", 1))
    console.print(render(view, max_rows=10))
    assert "and 2 more" in console.export_text()


def test_formatting() -> None:
    assert format_bytes(999) == "999 B"
    assert format_bytes(1_536_000) == "1.5 MB"
    assert format_bytes(3 * 10**12) == "3.0 TB"
    assert format_eta(None) == "-"
    assert format_eta(7) == "7s"
    assert format_eta(125) == "2m05s"
    assert format_eta(7260) == "2h01m"
    assert format_speed(state("a", 1, speed=0)) == "-"
