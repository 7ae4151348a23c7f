"""Outage handling: which errors count, backoff shape, one log line per outage, start-up wait."""

from __future__ import annotations

import asyncio
import logging

import pytest
from redis import exceptions as redis_exc
from redis.asyncio import Redis

from cache.backoff import Backoff
from cache.errors import CacheConnectionError, CacheResponseError
from worker.embedded import EmbeddedServer, free_port
from worker.outage import OutageLog, StartupTimeout, is_store_outage, wait_until_reachable


def test_store_outage_errors() -> None:
    assert is_store_outage(redis_exc.ConnectionError("refused"))
    assert is_store_outage(redis_exc.BusyLoadingError("LOADING"))
    assert is_store_outage(redis_exc.TimeoutError())
    assert is_store_outage(redis_exc.ReadOnlyError("READONLY You can't write"))
    assert is_store_outage(CacheConnectionError("down"))
    assert is_store_outage(redis_exc.ResponseError("OOM command not allowed"))
    assert not is_store_outage(redis_exc.ResponseError("WRONGTYPE"))
    assert not is_store_outage(CacheResponseError("bad"))
    assert not is_store_outage(ValueError("bug"))
    # redis-py's report of a connection lost during WATCH (seen when the store restarts)
    watch_lost = redis_exc.WatchError(
        "A ConnectionError occurred on while watching one or more keys"
    )
    assert is_store_outage(watch_lost)
    assert not is_store_outage(redis_exc.WatchError("Watched variable changed."))
    chained = CacheResponseError("wrapped")
    chained.__cause__ = redis_exc.ConnectionError("reset")
    assert is_store_outage(chained)


def test_backoff_grows_to_its_cap_with_jitter() -> None:
    backoff = Backoff(0.5, 10.0)
    delays = [backoff.next() for _ in range(10)]
    steps = [min(10.0, 0.5 * 2**i) for i in range(10)]
    assert all(s / 2 <= d <= s for d, s in zip(delays, steps, strict=True))
    backoff.reset()
    assert backoff.next() <= 0.5


def test_one_warning_per_outage(caplog: pytest.LogCaptureFixture) -> None:
    outage = OutageLog("queue store", Backoff(0.01, 0.02))
    with caplog.at_level(logging.INFO, "seen.worker.outage"):
        for _ in range(5):
            outage.failed(ConnectionError("refused"))
        outage.recovered()
        outage.recovered()
        outage.note(ConnectionError("again"))
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3
    assert messages[0].startswith("queue store unreachable")
    assert messages[1].startswith("queue store reachable again") and "5 failed" in messages[1]
    assert outage.outages == 2 and outage.down


async def test_start_up_waits_for_a_late_store() -> None:
    server = EmbeddedServer()
    client = Redis.from_url(server.url, socket_connect_timeout=0.2)
    outage = OutageLog("queue store", Backoff(0.05, 0.2))
    try:
        loop = asyncio.get_running_loop()
        loop.call_later(0.5, server.start)
        await wait_until_reachable(client.ping, outage, 10)
        assert outage.outages == 1 and not outage.down
    finally:
        await client.aclose()
        server.stop()


async def test_start_up_gives_up_after_its_timeout() -> None:
    client = Redis.from_url(f"redis://127.0.0.1:{free_port()}", socket_connect_timeout=0.2)
    try:
        with pytest.raises(StartupTimeout, match="did not answer within 1s"):
            await wait_until_reachable(client.ping, OutageLog("x", Backoff(0.1, 0.2)), 1)
    finally:
        await client.aclose()
