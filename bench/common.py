"""Shared pieces of the benchmarks: the environment they run in and how results look.

Every ``bench/bench_<topic>.py`` exposes ``async def run(env: BenchEnv) -> list[BenchResult]``.
A result names what was measured, its figures, and the baseline measured in the same run
(``ratio`` = ours / baseline for throughput, baseline / ours for latency, so >1 is worse
only where the docs say so; each result says which in ``ratio_meaning``).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class BenchEnv:
    """Where and how long to run: one private server shared by all benchmarks of a run."""

    url: str
    addr: str
    quick: bool
    server_binary: str
    redis_benchmark: str | None = None
    py_spy: str | None = None
    """py-spy's binary for the worker's profile (``--py-spy``; else cProfile)."""

    def scale(self, full: int, quick: int) -> int:
        """A loop count: ``quick`` under QUICK=1, else ``full``."""
        return quick if self.quick else full


@dataclass
class BenchResult:
    """One measured figure set, with its same-run baseline.

    Where a result was measured ``runs`` times, ``metrics`` holds the medians, ``ranges`` each
    metric's [min, max] over the runs, and ``ratio`` is computed from medians."""

    name: str
    metrics: dict[str, float]
    baseline: str | None = None
    ratio: float | None = None
    ratio_meaning: str = ""
    target: str = ""
    notes: dict[str, Any] = field(default_factory=dict)
    runs: int = 1
    ranges: dict[str, list[float]] = field(default_factory=dict)


@dataclass(frozen=True)
class Spread:
    """A figure measured in several runs: its median and range (never a best-of)."""

    runs: tuple[float, ...]

    @property
    def median(self) -> float:
        return float(statistics.median(self.runs))

    @property
    def range(self) -> list[float]:
        return [min(self.runs), max(self.runs)]

    def as_dict(self) -> dict[str, Any]:
        return {"median": _round(self.median), "range": self.range, "runs": list(self.runs)}


def spreads(runs: Sequence[Mapping[str, float]]) -> dict[str, Spread]:
    """Per figure, its values over ``runs`` (each run a dict of figures; the keys of the first)."""
    return {key: Spread(tuple(r[key] for r in runs if key in r)) for key in runs[0]} if runs else {}


def figure(value: float, span: Sequence[float] | None = None) -> str:
    """``10,508 [9,512-11,188]``: a median and its range (just the value without one)."""

    def text(v: float) -> str:
        return f"{v:,.0f}" if abs(v) >= 100 else f"{v:g}"

    if not span:
        return text(value)
    # a median kept to fewer decimals than its runs can round past its range (4.2 of runs all
    # 4.21): the median is one of the runs' values, so it is shown at the range's end
    value = min(max(value, span[0]), span[1])
    return f"{text(value)} [{text(span[0])}-{text(span[1])}]"


def _round(value: float) -> float:
    return round(value) if abs(value) >= 100 else round(value, 2)


def percentile(samples: list[float], q: float) -> float:
    """The q-th percentile (0-100) of ``samples``, nearest-rank; 0.0 when empty."""
    if not samples:
        return 0.0
    ordered = sorted(samples)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[rank]


def latency_summary(samples_s: list[float]) -> dict[str, float]:
    """p50/p99/mean in microseconds."""
    us = [s * 1e6 for s in samples_s]
    return {
        "p50_us": round(percentile(us, 50), 1),
        "p99_us": round(percentile(us, 99), 1),
        "mean_us": round(statistics.fmean(us), 1) if us else 0.0,
    }


async def ops_per_second(
    op: Callable[[], Awaitable[object]], total: int, concurrency: int = 1
) -> float:
    """Run ``op`` ``total`` times over ``concurrency`` tasks; operations per second."""
    import asyncio

    per_task = max(1, total // concurrency)

    async def loop() -> None:
        for _ in range(per_task):
            await op()

    start = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return per_task * concurrency / (time.perf_counter() - start)
