"""The per-job series of one worker, counted in plain integers and exposed at scrape time.

A job that ends touches four series (in progress up and down, queue wait, duration, outcome).
``prometheus_client``'s ``Counter``/``Histogram``/``Gauge`` take a lock and walk every bucket on
each update, which cost more than the rest of a short job's bookkeeping; the worker updates its
series from its one event-loop thread only, so here an update is an integer increment (a
histogram's: one ``bisect`` into its buckets) and the exposition is built when ``/metrics`` is
read (on the same thread). Names, labels, buckets and values are those the ``Counter``,
``Histogram`` and ``Gauge`` gave (tests read them back with prometheus_client's parser).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString


class Histogram:
    """One histogram's bucket counts (not cumulative), sum and count."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def cumulative(self) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        total = 0
        for bound, count in zip(self.bounds, self.counts, strict=False):
            total += count
            out.append((_bound(bound), total))
        out.append(("+Inf", total + self.counts[-1]))
        return out


class FunctionSeries:
    """What one function's jobs add up to."""

    __slots__ = ("duration", "ended", "in_progress", "queue_wait")

    def __init__(self, outcomes: Iterable[str], buckets: Sequence[float]) -> None:
        self.ended = dict.fromkeys(outcomes, 0)
        self.in_progress = 0
        self.queue_wait = Histogram(buckets)
        self.duration = Histogram(buckets)


class JobSeries(Collector):
    """``seen_jobs_total``, ``seen_jobs_in_progress``, ``seen_job_queue_wait_seconds`` and
    ``seen_job_duration_seconds`` for a fixed set of functions (labels are bounded)."""

    def __init__(
        self, functions: Iterable[str], outcomes: Sequence[str], buckets: Sequence[float]
    ) -> None:
        self.outcomes = tuple(outcomes)
        self.of = {name: FunctionSeries(outcomes, buckets) for name in sorted(functions)}

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily]:
        jobs = CounterMetricFamily(
            "seen_jobs", "Jobs ended, by function and outcome", labels=["function", "outcome"]
        )
        running = GaugeMetricFamily(
            "seen_jobs_in_progress", "Jobs running now", labels=["function"]
        )
        waits = HistogramMetricFamily(
            "seen_job_queue_wait_seconds",
            "Time from when a job was due (its queue score) to its start",
            labels=["function"],
        )
        durations = HistogramMetricFamily(
            "seen_job_duration_seconds", "Time a job's function ran", labels=["function"]
        )
        for name, series in self.of.items():
            for outcome in self.outcomes:
                jobs.add_metric([name, outcome], series.ended[outcome])
            running.add_metric([name], series.in_progress)
            waits.add_metric([name], series.queue_wait.cumulative(), series.queue_wait.sum)
            durations.add_metric([name], series.duration.cumulative(), series.duration.sum)
        yield jobs
        yield running
        yield waits
        yield durations

    def describe(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily]:
        return self.collect()


def _bound(value: float) -> str:
    """A bucket bound as prometheus_client writes it (``0.005``, ``1.0``)."""
    text: str = floatToGoString(value)  # type: ignore[no-untyped-call]
    return text
