"""The demo's simulated pipeline behaves like the real one reports."""

from __future__ import annotations

from cache.download import DownloadStatus
from worker.simulation import Fate, Simulation


def run(sim: Simulation, ticks: int = 400, dt: float = 0.5) -> list[list[int]]:
    seqs: dict[str, list[int]] = {d.job_id: [] for d in sim.downloads}
    for i in range(ticks):
        for update in sim.step(1000.0 + i * dt):
            seqs[update.job_id].append(update.seq)
        if sim.finished:
            break
    return list(seqs.values())


def test_every_download_ends_in_its_fate() -> None:
    sim = Simulation(200, duration=10, seed=3)
    per_download = run(sim)
    assert sim.finished
    expected = {
        Fate.COMPLETE: DownloadStatus.COMPLETED,
        Fate.FAIL: DownloadStatus.FAILED,
        Fate.CANCEL: DownloadStatus.CANCELLED,
    }
    for d in sim.downloads:
        assert d.status is expected[d.fate]
        assert d.last is not None
        assert d.last.status is d.status
        if d.fate is Fate.COMPLETE:
            assert d.done == d.total
        else:
            assert d.done < d.total
    assert {d.fate for d in sim.downloads} == set(Fate)
    for seqs in per_download:
        assert seqs == list(range(1, len(seqs) + 1))


def test_finishes_in_about_its_duration_and_is_reproducible() -> None:
    a, b = Simulation(50, duration=10, seed=1), Simulation(50, duration=10, seed=1)
    ticks = len(max(run(a), key=len))
    assert ticks < 2 * 10 / 0.5
    run(b)
    assert [d.last for d in a.downloads] == [d.last for d in b.downloads]


def test_failed_downloads_carry_an_error() -> None:
    sim = Simulation(100, duration=5, seed=9)
    run(sim)
    for d in sim.downloads:
        assert d.last is not None
        assert (d.last.error is not None) == (d.status is DownloadStatus.FAILED)


def test_a_continuous_simulation_keeps_starting_downloads_and_holds_at_most_count() -> None:
    sim = Simulation(10, duration=4, seed=5, continuous=True)
    seen: set[str] = set()
    for i in range(2000):  # 1000 s of demo
        for update in sim.step(1000.0 + i * 0.5):
            seen.add(update.job_id)
        assert len(sim.downloads) == 10
        assert not sim.finished
    assert sim.started > 100 and len(seen) == sim.started
    assert sum(sim.status_counts().values()) == sim.started
    assert sum(sim.retired.values()) >= sim.started - 10
    assert set(sim.retired) == {"completed", "failed", "cancelled"}
