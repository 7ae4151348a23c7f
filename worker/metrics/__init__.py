"""The worker's own series (its ``/metrics``): not HTTP, so not under ``worker.http``.

``registry`` (``WorkerMetrics``: the registry, the engine's observer), ``jobseries`` (per-job
series counted in plain integers), ``totals`` (series whose counts their owners keep, handed
over as typed values at scrape time: ``MetricTotals``).
"""

from worker.metrics.registry import WorkerMetrics
from worker.metrics.totals import MetricTotals

__all__ = ["MetricTotals", "WorkerMetrics"]
