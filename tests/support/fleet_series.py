"""The names of the samples the fleet exporter produces, read from the exporter itself.

``exported_sample_names()`` renders ``exporter.snapshot_families`` and ``scrape_families`` of a
snapshot built from empty views, so a renamed series breaks every test that checks an
expression against it (docs/alerts.yml, the KEDA trigger of deploy/kubernetes).
"""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from worker.http.fleet.exporter import (
    FleetSnapshot,
    StaticCollector,
    scrape_families,
    snapshot_families,
)
from worker.http.fleet.models import (
    DeadLetters,
    JobTotals,
    Overview,
    QueueView,
    Schedule,
    ShardView,
    StoreView,
)

SERIES = re.compile(r"\b(seen_[a-z0-9_]+)\b")
"""A series name in a PromQL expression."""


def exported_sample_names() -> set[str]:
    queue = QueueView("arq:queue", 0, 0, 0, 0, None, True, True)
    overview = Overview(0, [], queue, JobTotals(0, 0, 0), StoreView(ok=True), 0, 15.0)
    snapshot = FleetSnapshot(
        overview,
        [Schedule("log_cache_stats", 300, [], [], None)],
        [ShardView(0, 0, 0, 0, None)],
        DeadLetters(0, [], []),
    )
    registry = CollectorRegistry(auto_describe=False)
    families = scrape_families(True, 0.0, {}) + snapshot_families(snapshot, "arq:queue")
    registry.register(StaticCollector(families))
    text = generate_latest(registry).decode()
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


def named_series(expr: str) -> set[str]:
    """The ``seen_*`` series an expression names."""
    return set(SERIES.findall(expr))
