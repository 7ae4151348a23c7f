"""What only a real Redis Cluster shows (cluster lane, ``SEEN_TEST_CLUSTER=1``).

Cross-slot calls fail (the script check, the one-slot transaction, and the cluster's own
CROSSSLOT), the layer's multi-key reads and writes split per slot, SCAN and INFO cover every
primary, and a queue store on a cluster node is refused at start-up.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from redis import exceptions as redis_exc
from redis.asyncio import Redis

from cache.client import create_client
from cache.cluster import SeenCluster, slot_of
from cache.config import CacheSettings
from cache.errors import CacheError
from cache.manager import CacheManager
from jobs.client import enqueue_job, enqueue_update
from jobs.deadletter import read_dead_letters
from tests.support.cancellation import cancel_commands
from tests.support.cluster import TestCluster
from tests.support.layout import LAYOUT
from tests.support.processes import run_burst_worker, run_cli, worker_settings, write_settings
from tests.support.updates import upd
from worker.embedded import EmbeddedServer
from worker.http.fleet.store import read_store
from worker.queue_store import QueueStoreError, refuse_cluster

pytestmark = pytest.mark.cluster

SPREAD = [f"spread:{{t{i}}}" for i in range(40)]  # forty hashtags: every primary gets some


def test_keys_spread_over_every_primary(cluster: TestCluster) -> None:
    owners = {cluster.node_for_slot(slot_of(f"seen:{k}")).port for k in SPREAD}
    assert len(owners) == 3


async def test_client_is_the_cluster_client(manager: CacheManager) -> None:
    assert isinstance(manager.client, SeenCluster)
    assert manager.service.cluster


async def test_cross_slot_script_call_is_refused(manager: CacheManager) -> None:
    keys = [manager.keys.lock("a"), manager.keys.lock_fence("b")]
    assert slot_of(keys[0]) != slot_of(keys[1])
    with pytest.raises(CacheError, match="span hashtags"):
        await manager.scripts.run("lock_acquire", keys, ["token", 1000])
    # past the client's own check, the cluster refuses it too
    with pytest.raises(redis_exc.RedisClusterException):
        await manager.client.execute_command(  # type: ignore[no-untyped-call]
            "EVAL", "return 1", 2, *keys
        )


async def test_cross_slot_transaction_is_refused(manager: CacheManager) -> None:
    async with manager.client.pipeline(transaction=True) as pipe:
        pipe.set("seen:{x}:a", "1")
        pipe.set("seen:{y}:b", "2")
        with pytest.raises(CacheError, match="one hash slot"):
            await pipe.execute()
    assert await manager.service.exists("seen:{x}:a", "seen:{y}:b") == 0


async def test_one_slot_transaction_is_atomic_on_the_owner(manager: CacheManager) -> None:
    async with manager.client.pipeline(transaction=True) as pipe:
        pipe.incrby("seen:{tx}:n", 5)
        pipe.pexpire("seen:{tx}:n", 60_000)
        pipe.get("seen:{tx}:n")
        assert await pipe.execute() == [5, True, b"5"]


async def test_mget_mset_across_slots_keep_order(manager: CacheManager) -> None:
    keys = [f"seen:{k}" for k in SPREAD]
    await manager.service.mset({k: f"v{i}" for i, k in enumerate(keys)}, ttl=60)
    wanted = [*reversed(keys), "seen:missing"]
    expected = [f"v{i}" for i in reversed(range(len(keys)))]
    assert await manager.service.mget(wanted) == [*expected, None]
    for key in keys[:3]:
        assert 0 < await manager.service.ttl(key) <= 60


async def test_scan_and_delete_by_pattern_visit_every_primary(manager: CacheManager) -> None:
    keys = [f"seen:{k}" for k in SPREAD]
    await manager.service.mset(dict.fromkeys(keys, "1"))
    await manager.service.set("seen:other", "1")
    assert sorted(await manager.service.keys("seen:spread:*")) == sorted(keys)
    assert await manager.delete_keys_by_pattern("seen:spread:*") == len(keys)
    assert await manager.service.exists(*keys) == 0
    assert await manager.service.get("seen:other") == "1"


async def test_stats_add_up_every_primary(manager: CacheManager, raw: Redis) -> None:
    keys = [f"seen:{k}" for k in SPREAD]
    await manager.service.mset(dict.fromkeys(keys, "1"))
    stats = await manager.stats()
    assert stats.keys == len(keys)
    assert stats.keys == await raw.dbsize()  # the test client sums DBSIZE over primaries too


async def test_the_dashboard_store_view_adds_up_every_primary(
    manager: CacheManager, cluster: TestCluster
) -> None:
    """The fleet view's memory and hit figures are the whole cluster's, not one node's."""
    keys = [f"seen:{k}" for k in SPREAD]
    await manager.service.mset(dict.fromkeys(keys, "x" * 1000))
    for key in keys:  # one hit per key: the hits land on every primary
        await manager.service.get(key)
    view = await read_store(manager)
    assert view.ok and view.keyspace_hits is not None and view.keyspace_hits >= len(keys)
    per_node = [cluster.node_for_slot(slot_of(k)).port for k in keys]
    assert len(set(per_node)) == 3
    memory = 0
    for node in cluster.primaries():
        with cluster.admin(node) as client:
            memory += int(client.info("memory")["used_memory"])
    assert view.used_memory is not None and view.used_memory > memory / 2  # all three, not one


async def test_queue_on_a_cluster_node_is_refused(cluster: TestCluster) -> None:
    node = cluster.nodes[0]
    queue = Redis(host="127.0.0.1", port=node.port)
    try:
        with pytest.raises(QueueStoreError, match="cluster_enabled:1"):
            await refuse_cluster(queue, node.addr)
    finally:
        await queue.aclose()
    with EmbeddedServer() as single:
        plain = Redis(host="127.0.0.1", port=single.port)
        try:
            await refuse_cluster(plain, single.addr)  # a standalone server is fine
        finally:
            await plain.aclose()


@pytest.mark.timeout(60)
def test_worker_with_a_cluster_queue_fails_at_start_up(
    cluster: TestCluster, tmp_path: Path
) -> None:
    settings = write_settings(
        tmp_path / "settings.toml", cluster.addr, queue={"addr": cluster.nodes[0].addr}
    )
    env = {"SEEN_SETTINGS_FILE": str(settings), "PATH": "/usr/bin:/bin"}
    done = run_cli("run", env=env, timeout=45)
    assert done.returncode == 1
    assert "is a Redis Cluster node" in done.stderr


async def test_worker_jobs_with_the_cache_on_a_cluster(
    cluster: TestCluster, manager: CacheManager
) -> None:
    """The progress jobs and the dead-letter list on the cluster, the queue on one instance."""
    with EmbeddedServer() as single:
        queue = Redis(host="127.0.0.1", port=single.port)
        try:
            jobs = [
                await enqueue_update(queue, upd(f"cl-{i}", 5), layout=LAYOUT) for i in range(20)
            ]
            bad = await enqueue_job(
                queue, "update_progress", {"job_id": "cl-x", "seq": "no"}, layout=LAYOUT
            )
            assert all(jobs) and bad
            settings = worker_settings(cluster.addr, queue={"addr": single.addr})
            worker = await run_burst_worker(settings)
        finally:
            await queue.aclose()
    assert (worker.complete, worker.failed) == (20, 1)
    states = await manager.download.get_many([f"cl-{i}" for i in range(20)])
    assert [s.seq if s else None for s in states] == [5] * 20
    assert [d.job_id for d in await read_dead_letters(manager)] == [bad]


async def test_cancelled_commands_end_cancelled_on_the_cluster(cluster: TestCluster) -> None:
    """``CancelSafeWrites`` holds on the cluster client's connections too."""
    client = create_client(CacheSettings(addr=cluster.addr))
    try:
        await client.ping()
        cancelled, swallowed = await cancel_commands(client, 1500)
        assert swallowed == 0, f"{swallowed} cancelled commands returned normally"
        assert cancelled > 150  # many landed in flight (the rest found the command done)
        assert await client.set("seen:test:cancel", "after")  # broken connections replaced
    finally:
        await client.aclose()
