"""A simulated download pipeline for ``seen-worker demo``: downloads at realistic, varied
speeds that pause, fail or get cancelled, reported the way the real pipeline reports them.

Pure logic (no I/O): ``step(now)`` advances every unfinished download and returns the
``ProgressUpdate``s to publish, each with the next ``seq`` of its download. A ``continuous``
simulation (``make run``: the demo until Ctrl-C) never finishes: each step retires the downloads
that ended in an earlier step and starts new ones in their place, so at most ``count`` are held
(and active in the store) at any time while new ids keep coming.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum

from cache.download import DownloadStatus, ProgressUpdate

MB = 1024 * 1024


class Fate(StrEnum):
    COMPLETE = "complete"
    FAIL = "fail"
    CANCEL = "cancel"


@dataclass
class SimulatedDownload:
    """One download's ground truth; ``last`` is the last update published for it."""

    job_id: str
    user_id: str
    total: int
    speed: float  # mean bytes/s
    fate: Fate
    stop_at: float  # fraction of ``total`` where a failing/cancelled download ends
    done: int = 0
    seq: int = 0
    status: DownloadStatus = DownloadStatus.QUEUED
    paused_until: float = 0.0
    last: ProgressUpdate | None = None

    @property
    def finished(self) -> bool:
        return self.status.terminal


@dataclass
class Simulation:
    """``count`` downloads sized so that they finish in about ``duration`` seconds."""

    count: int
    duration: float
    seed: int = 7
    users: int = 5
    continuous: bool = False
    """Replace every finished download by a new one, forever (``finished`` stays False)."""
    downloads: list[SimulatedDownload] = field(default_factory=list)
    started: int = 0
    """Downloads started so far (the next one is ``demo-<started>``)."""
    retired: Counter[str] = field(default_factory=Counter)
    """Finished downloads a continuous simulation let go, by final status."""
    _last_step: float | None = None

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        for _ in range(self.count):
            self.downloads.append(self._new())

    def _new(self) -> SimulatedDownload:
        rng, i = self.rng, self.started
        self.started += 1
        speed = rng.choice([2, 5, 12, 25, 40]) * MB * rng.uniform(0.7, 1.3)
        fate = rng.choices(list(Fate), weights=[80, 10, 10])[0]
        total = int(speed * self.duration * rng.uniform(0.3, 0.6))
        return SimulatedDownload(
            job_id=f"demo-{i:04d}",
            user_id=f"user{i % self.users}",
            total=max(total, MB),
            speed=speed,
            fate=fate,
            stop_at=rng.uniform(0.2, 0.8),
        )

    @property
    def finished(self) -> bool:
        return not self.continuous and all(d.finished for d in self.downloads)

    def status_counts(self) -> Counter[str]:
        """Every download started so far by its status now (retired ones included)."""
        return self.retired + Counter(d.status.value for d in self.downloads)

    def _refill(self) -> None:
        """Retire the downloads whose final update went out in an earlier step; start new."""
        for n, d in enumerate(self.downloads):
            if d.finished:
                self.retired[d.status.value] += 1
                self.downloads[n] = self._new()

    def _update(self, d: SimulatedDownload, now: float, error: str | None = None) -> ProgressUpdate:
        d.seq += 1
        d.last = ProgressUpdate(
            job_id=d.job_id,
            user_id=d.user_id,
            status=d.status,
            seq=d.seq,
            bytes_done=d.done,
            bytes_total=d.total,
            emitted_at_ms=int(now * 1000),
            error=error,
        )
        return d.last

    def step(self, now: float) -> list[ProgressUpdate]:
        """Advance to ``now`` (seconds); the updates to publish."""
        dt = 0.0 if self._last_step is None else max(0.0, now - self._last_step)
        self._last_step = now
        if self.continuous:
            self._refill()
        updates: list[ProgressUpdate] = []
        for d in self.downloads:
            if d.finished:
                continue
            if d.status is DownloadStatus.QUEUED:
                d.status = DownloadStatus.DOWNLOADING
                updates.append(self._update(d, now))
                continue
            if d.status is DownloadStatus.PAUSED:
                if now < d.paused_until:
                    continue
                d.status = DownloadStatus.DOWNLOADING
            elif self.rng.random() < 0.01:
                d.status = DownloadStatus.PAUSED
                d.paused_until = now + self.rng.uniform(1.0, 3.0)
                updates.append(self._update(d, now))
                continue
            d.done = min(d.total, d.done + int(d.speed * dt * self.rng.uniform(0.6, 1.4)))
            error = None
            if d.fate is not Fate.COMPLETE and d.done >= d.total * d.stop_at:
                d.done = int(d.total * d.stop_at)
                if d.fate is Fate.FAIL:
                    d.status, error = DownloadStatus.FAILED, "connection reset by peer"
                else:
                    d.status = DownloadStatus.CANCELLED
            elif d.done >= d.total:
                d.status = DownloadStatus.COMPLETED
            updates.append(self._update(d, now, error))
        return updates
