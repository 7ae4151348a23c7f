"""The fixed label sets behind the worker's series, and the counting that needs no server:
store error kinds, the read counter's refusal of unknown labels, the cron-run outcomes and the
store failures recorded by the job wrapper."""

from __future__ import annotations

import asyncio

import pytest
from arq.worker import Retry
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from redis import exceptions as redis_exc

from cache.catalog import CatalogKind
from cache.counts import CACHE_KINDS, ReadCounts
from cache.errors import (
    CacheConnectionError,
    CacheOutOfMemoryError,
    CacheTimeoutError,
    SerializationError,
    store_error_kind,
    translate_errors,
)
from worker.metrics import MetricTotals, WorkerMetrics

pytestmark = pytest.mark.unit


def test_every_catalog_kind_is_a_cache_kind() -> None:
    assert {k.value for k in CatalogKind} <= set(CACHE_KINDS)
    assert len(set(CACHE_KINDS)) == len(CACHE_KINDS)


def test_read_counts_refuse_a_label_outside_the_fixed_sets() -> None:
    reads = ReadCounts()
    reads.add("session", "hit")
    with pytest.raises(ValueError, match="unknown cache read"):
        reads.add("user-42", "hit")
    with pytest.raises(ValueError, match="unknown cache read"):
        reads.add("session", "maybe")
    with pytest.raises(SerializationError), reads.errors("profile"):
        raise SerializationError("unreadable")
    assert {k: v for k, v in reads.snapshot().items() if v} == {
        ("session", "hit"): 1,
        ("profile", "error"): 1,
    }


def translated(exc: Exception) -> BaseException:
    try:
        with translate_errors("k"):
            raise exc
    except Exception as out:
        return out
    raise AssertionError("not raised")


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (redis_exc.TimeoutError("Timeout reading from socket"), "timeout"),
        (CacheTimeoutError("slow"), "timeout"),
        (redis_exc.ConnectionError("Connection refused"), "connection"),
        (ConnectionResetError(), "connection"),
        (redis_exc.OutOfMemoryError("command not allowed when used memory > 'maxmemory'"), "oom"),
        (redis_exc.ResponseError("Out of memory"), "oom"),  # Dragonfly's -ERR
        (CacheOutOfMemoryError("full"), "oom"),
        (redis_exc.ReadOnlyError("You can't write against a read only replica."), "readonly"),
        (redis_exc.ResponseError("READONLY You can't write"), "readonly"),
        (redis_exc.ResponseError("WRONGTYPE Operation against a key"), "response"),
        (ValueError("not a store error"), "other"),
    ],
)
def test_store_error_kinds(exc: Exception, kind: str) -> None:
    assert store_error_kind(exc) == kind
    if isinstance(exc, redis_exc.RedisError):
        assert store_error_kind(translated(exc)) == kind  # the same through CacheError


def test_a_retry_is_classified_by_its_cause() -> None:
    retry = Retry(defer=1)
    retry.__cause__ = CacheConnectionError("away")
    assert store_error_kind(retry) == "connection"


class NoTotals:
    def metric_totals(self) -> MetricTotals:
        return MetricTotals()


def samples(metrics: WorkerMetrics, name: str) -> dict[tuple[str, ...], float]:
    text = generate_latest(metrics.registry).decode()
    (family,) = [f for f in text_string_to_metric_families(text) if f.name == name]
    return {tuple(s.labels.values()): s.value for s in family.samples if s.name == name + "_total"}


def test_cron_runs_by_how_the_job_ended() -> None:
    """The engine reports each scheduled run's end (``job_ran``); a store failure behind a
    ``Retry`` is counted as a store error, any other error is not."""
    metrics = WorkerMetrics(["tick", "manual"], NoTotals(), ["tick"])
    store: BaseException = Retry(defer=1)
    store.__cause__ = CacheOutOfMemoryError("full")
    ends: list[tuple[BaseException | None, str | None]] = [
        (None, "ran"),
        (None, "ran"),
        (None, "skipped"),
        (RuntimeError("boom"), "failed"),
        (store, "failed"),
        (asyncio.CancelledError(), "handed_back"),
        (None, None),  # not a scheduled run: not counted
    ]
    for error, scheduled in ends:
        metrics.job_started("tick", 0.0)
        metrics.job_ran("tick", 0.01, error=error, scheduled_outcome=scheduled)
    runs = samples(metrics, "seen_cron_runs")
    assert runs == {
        ("tick", "ran"): 2,
        ("tick", "failed"): 2,
        ("tick", "skipped"): 1,
        ("tick", "deferred"): 0,
        ("tick", "handed_back"): 1,
    }
    errors = samples(metrics, "seen_store_errors")
    assert errors[("oom", "cache")] == 1
    assert sum(errors.values()) == 1  # RuntimeError is not a store failure
