"""``seen-worker check`` against the test server: all pass, nothing left behind."""

from __future__ import annotations

from typing import Any

import pytest
from redis._parsers.helpers import parse_info as redis_parse_info
from redis.asyncio import Redis

from cache.config import CacheConfig
from jobs.wire.layout import QueueLayout
from tests.conftest import TestServer, cache_config_for
from worker.check import render, run_checks, run_queue_check
from worker.cli import main
from worker.embedded import free_port
from worker.queue_check import dragonfly_counters


async def test_all_checks_pass_and_leave_nothing(cache_config: CacheConfig, raw: Redis) -> None:
    await raw.set("seen:existing", "kept")
    results = await run_checks(cache_config)
    failed = [r for r in results if not r.ok]
    assert not failed, render(results)
    assert {r.name for r in results} >= {
        "basic ops",
        "ttl",
        "atomic ops",
        "json",
        "bulk ops",
        "scan",
        "info",
        "session",
        "progress",
        "rate limit",
        "lock",
    }
    assert [k async for k in raw.scan_iter("*")] == ["seen:existing"]
    assert "0 failed" in render(results)


async def test_unreachable_store_fails_clearly() -> None:
    results = await run_checks(cache_config_for(f"127.0.0.1:{free_port()}"))
    assert len(results) == 1
    assert not results[0].ok
    assert "unreachable" in results[0].detail


def test_cli_check_exit_codes(server: TestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEEN_CACHE_ADDR", server.addr)
    assert main(["check"]) == 0
    monkeypatch.setenv("SEEN_CACHE_ADDR", f"127.0.0.1:{free_port()}")
    monkeypatch.setenv("SEEN_CACHE_RETRIES", "0")
    assert main(["check"]) == 1


@pytest.mark.parametrize("layout", [QueueLayout.arq(), QueueLayout.sharded("arq:queue", 8)])
async def test_queue_check_runs_a_job_through_every_shard(
    server: TestServer, raw: Redis, layout: QueueLayout
) -> None:
    await raw.set("seen:existing", "kept")
    client = Redis.from_url(server.url)
    try:
        results = await run_queue_check(client, layout)
    finally:
        await client.aclose()
    assert [r.name for r in results] == ["job queue"]  # not Dragonfly: no path report
    assert results[0].ok, results[0].detail
    assert f"{layout.count} shard" in results[0].detail or layout.kind == "arq"
    assert [k async for k in raw.scan_iter("*")] == ["seen:existing"]  # nothing left


def test_dragonfly_counters_are_read_from_info_all() -> None:
    """``INFO ALL`` as Dragonfly writes it (its ``server`` and ``transaction`` sections); a
    Redis or Valkey INFO has no ``dragonfly_version``."""
    text = (
        "# Server\r\nredis_version:7.4.0\r\ndragonfly_version:df-v1.40.0\r\n"
        "# Transaction\r\ntx_global_total:12\r\ntx_queue_len:0\r\n"
        "eval_io_coordination_total:3\r\neval_shardlocal_coordination_total:41\r\n"
    )
    info: dict[str, Any] = redis_parse_info(text)  # type: ignore[no-untyped-call]
    assert dragonfly_counters(info) == (41, 3)
    plain: dict[str, Any] = redis_parse_info("# Server\r\nredis_version:7.0.15\r\n")  # type: ignore[no-untyped-call]
    assert dragonfly_counters(plain) is None
