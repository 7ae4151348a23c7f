"""Warmup sources that worker processes run by dotted path (``tests.support.sources:slow_source``):
slow, busy or timed runs for the stop, lease and hand-back tests."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cache.catalog import CatalogKind
from cache.catalog._entry import pack
from cache.clock import wall_ms
from cache.coordination import LockTimeout
from cache.errors import SerializationError
from cache.manager import CacheManager
from cache.session_cache import REVEAL, SessionData, UserProfile

SLOW_EVENTS = "seen:test:slow:events"


async def slow_source(manager: CacheManager) -> int:
    """A warmup source that takes ``SEEN_TEST_SLOW_SECONDS`` and records start/done with pid."""
    seconds = float(os.environ.get("SEEN_TEST_SLOW_SECONDS", "1.5"))
    client: Any = manager.client
    await client.rpush(SLOW_EVENTS, f"start:{os.getpid()}")
    await asyncio.sleep(seconds)
    await client.rpush(SLOW_EVENTS, f"done:{os.getpid()}")
    return 1


async def busy_source(manager: CacheManager) -> int:
    """A warmup source that talks to the store non-stop for ``SEEN_TEST_BUSY_SECONDS``.

    Records ``busy:<pid>`` in ``SLOW_EVENTS`` when it starts (in the process's namespace-free
    test key, so any namespace sees it).
    """
    seconds = float(os.environ.get("SEEN_TEST_BUSY_SECONDS", "30"))
    client: Any = manager.client
    await client.rpush(SLOW_EVENTS, f"busy:{os.getpid()}")
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        await client.set("seen:test:busy", "x")
        await client.get("seen:test:busy")
    return 1


async def interval_source(manager: CacheManager) -> int:
    """A warmup source that records when it runs in the file ``SEEN_TEST_INTERVALS`` (local,
    so it works while the store is paused): ``<run> start <t>`` and ``<run> end|cancelled <t>``
    lines, wall-clock seconds. Runs ``SEEN_TEST_SLOW_SECONDS`` without touching the store."""
    path = Path(os.environ["SEEN_TEST_INTERVALS"])
    seconds = float(os.environ.get("SEEN_TEST_SLOW_SECONDS", "8"))
    run = f"{os.getpid()}-{secrets.token_hex(3)}"

    def note(what: str) -> None:
        with path.open("a", encoding="utf-8") as out:
            out.write(f"{run} {what} {time.time():.4f}\n")

    note("start")
    try:
        await asyncio.sleep(seconds)
    except BaseException:
        note("cancelled")
        raise
    note("end")
    return 1


async def metered_source(manager: CacheManager) -> int:
    """A warmup source that does known cache, lock and rate-limit work inside a worker, for
    the metrics tests (``tests/integration/test_worker_series.py`` lists what it must count).

    Per run: locks acquired 1, busy 2, timeout 1; rate limits gcra allowed 1 / limited 1,
    fixed allowed 1 / limited 2; reads: session hit/miss/stale/error 1 each, refresh_token
    hit 1 / miss 1, profile hit 1 / miss 1, download_list miss 1, dashboard miss 1 (its
    get_or_compute) then hit 1, discover stale 1."""
    run = secrets.token_hex(4)
    lock = await manager.locks.try_acquire(f"metered-{run}", ttl=30)
    assert lock is not None
    assert await manager.locks.try_acquire(f"metered-{run}") is None
    try:
        await manager.locks.acquire(f"metered-{run}", wait=0)
    except LockTimeout:
        pass
    else:
        raise AssertionError("a held lock was acquired")
    await lock.release()

    limiter = manager.ratelimit
    assert (await limiter.check(run, "metered", 1, 60)).allowed
    assert not (await limiter.check(run, "metered", 1, 60)).allowed
    assert (await limiter.check_fixed(run, "metered", 1, 60)).allowed
    for _ in range(2):
        assert not (await limiter.check_fixed(run, "metered", 1, 60)).allowed

    sessions = manager.session
    future = datetime.now(UTC) + timedelta(hours=1)
    live = SessionData(
        session_id=f"s-{run}", user_id=f"u-{run}", refresh_token=run, expires_at=future
    )
    await sessions.set_session(live)
    assert await sessions.get_session(live.session_id) is not None  # hit
    assert await sessions.get_session(f"none-{run}") is None  # miss
    past = live.model_copy(update={"session_id": f"old-{run}", "refresh_token": None})
    past = past.model_copy(update={"expires_at": datetime.now(UTC) - timedelta(minutes=1)})
    stored = past.model_dump(mode="json", context=REVEAL)
    await manager.service.set_json(manager.keys.session(past.session_id), stored, 60)
    assert await sessions.get_session(past.session_id) is None  # stale
    await manager.service.set(manager.keys.session(f"bad-{run}"), "not a session", 60)
    try:
        await sessions.get_session(f"bad-{run}")  # error
    except SerializationError:
        pass
    else:
        raise AssertionError("an unreadable session was read")
    assert await sessions.get_session_by_refresh_token(run) is not None  # hit
    assert await sessions.get_session_by_refresh_token(f"x{run}") is None  # miss
    assert await sessions.get_user_profile(f"u-{run}") is None  # miss
    await sessions.set_user_profile(UserProfile(user_id=f"u-{run}"))
    assert await sessions.get_user_profile(f"u-{run}") is not None  # hit
    assert await manager.download.get_download_list(f"u-{run}") is None  # miss

    async def load() -> dict[str, int]:
        return {"items": 1}

    catalog = manager.catalog
    await catalog.get_or_compute(CatalogKind.DASHBOARD, load, user_id=f"u-{run}")  # miss
    assert await catalog.get(CatalogKind.DASHBOARD, user_id=f"u-{run}") is not None  # hit
    generation = await catalog.generation()
    due = pack(b'{"items":0}', wall_ms() - 1000, 50)  # past its soft expiry: refresh due
    key = manager.keys.catalog_shared_entry(CatalogKind.DISCOVER, f"s-{run}", generation)
    await manager.client.set(key, due, px=60_000)
    await catalog.get_or_compute(CatalogKind.DISCOVER, load, section_id=f"s-{run}")  # stale
    return 1
