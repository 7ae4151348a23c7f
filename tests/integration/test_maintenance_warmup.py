"""``warmup_cache``: scripts and pool, the JSON-lines snapshot, callable sources, failures."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from cache.catalog import canonical_search
from cache.manager import CacheManager
from jobs import maintenance
from jobs.config import WarmupSettings
from jobs.warmup import fill_catalog
from tests.conftest import TestServer
from tests.integration.test_maintenance import make_ctx
from worker.settings import load_settings

HERE = "tests.integration.test_maintenance_warmup"


def entries_source(manager: CacheManager) -> Iterable[dict[str, Any]]:
    return [{"kind": "watch_later", "user_id": f"u{i}", "value": [i]} for i in range(3)]


async def async_source(manager: CacheManager) -> AsyncIterator[dict[str, Any]]:
    for i in range(2):
        yield {"kind": "discover", "item": f"row{i}", "value": {"n": i}}


async def counting_source(manager: CacheManager) -> int:
    await manager.service.set("seen:catalog:custom:x:g0", "1", ttl=60)
    return 1


def broken_source(manager: CacheManager) -> int:
    raise RuntimeError("source is down")


def write_snapshot(path: Path) -> Path:
    lines = [
        json.dumps({"kind": "dashboard", "user_id": "u1", "value": {"rows": [1, 2]}}),
        json.dumps({"kind": "recommendations", "user_id": "u1", "value": [9]}),
        json.dumps({"kind": "search_results", "query": "star wars", "value": [1], "ttl": 120}),
        "",
        "{not json",
        json.dumps({"kind": "nonsense", "user_id": "u1", "value": 1}),
        json.dumps({"kind": "dashboard", "value": 1}),  # no user_id
        json.dumps({"kind": "dashboard", "user_id": "bad*id", "value": 1}),
        json.dumps([1, 2]),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


async def test_snapshot_entries_are_written_with_their_ttls(
    manager: CacheManager, raw: Redis, tmp_path: Path
) -> None:
    settings = WarmupSettings(snapshot=str(write_snapshot(tmp_path / "snap.jsonl")), batch=2)
    counts = await fill_catalog(manager, settings)
    assert counts == {"written": 3, "rejected": 5, "failed_sources": 0, "snapshot": 3}
    catalog = manager.catalog
    assert await catalog.get_dashboard("u1") == {"rows": [1, 2]}
    assert await catalog.get_recommendations("u1") == [9]
    assert await catalog.get_search_results("Star  WARS") == [1]
    keys = manager.keys
    dashboard = keys.catalog_user_entry("dashboard", "u1", 0)
    assert 0 < await raw.ttl(dashboard) <= manager.config.ttl.catalog
    recs = keys.catalog_user_entry("recommendations", "u1", 0)
    assert manager.config.ttl.catalog < await raw.ttl(recs) <= manager.config.ttl.recommendations
    search = keys.catalog_search_entry(canonical_search("star wars", None), 0)
    assert 0 < await raw.ttl(search) <= 120


async def test_callable_sources_and_a_failing_one(manager: CacheManager, raw: Redis) -> None:
    settings = WarmupSettings(
        callables=(
            f"{HERE}:entries_source",
            f"{HERE}.async_source",
            f"{HERE}:broken_source",
            f"{HERE}:counting_source",
            "no.such.module:fn",
            f"{HERE}:missing",
        )
    )
    counts = await fill_catalog(manager, settings)
    assert counts["failed_sources"] == 3
    assert counts[f"{HERE}:entries_source"] == 3
    assert counts[f"{HERE}.async_source"] == 2
    assert counts[f"{HERE}:counting_source"] == 1
    assert counts["written"] == 6
    assert await manager.catalog.get_watch_later("u2") is not None
    assert await manager.catalog.get_discover("row1") is not None


async def test_warmup_job_primes_and_survives_a_missing_snapshot(
    manager: CacheManager, raw: Redis, server: TestServer, tmp_path: Path
) -> None:
    await raw.script_flush()
    settings = load_settings(
        cache={"addr": server.addr},
        warmup={"snapshot": str(tmp_path / "absent.jsonl"), "pool_connections": 3},
    )
    result = await maintenance.warmup_cache(make_ctx(manager, settings, "manual-w"))
    assert result["failed_sources"] == 1 and result["written"] == 0
    assert result["connections"] == 3
    assert result["scripts"] == len(manager.scripts.scripts)
    shas = [s.sha for s in manager.scripts.scripts.values()]
    assert all(await raw.script_exists(*shas))
