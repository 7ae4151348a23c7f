"""``seen-worker check`` against the test server: all pass, nothing left behind."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from cache.config import CacheConfig
from tests.conftest import TestServer, cache_config_for
from worker.check import render, run_checks
from worker.cli import main
from worker.embedded import free_port


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
