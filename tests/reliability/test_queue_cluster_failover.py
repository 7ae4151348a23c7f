"""The job queue on a real Redis Cluster (sharded layout): a primary is SIGKILLed while two
worker processes drain a backlog and a producer keeps enqueueing; its replica takes over.

Checked: no job lost (every job ends with exactly one result), no job run twice at the same
time (each run records its start and end; the runs of one job never overlap: a job whose
finish went down with the primary runs again after its lease, never beside itself), and how
long after the kill a job of the killed primary's shards finishes on the promoted replica
(printed for the note, capped by ``RECOVERY_BOUND``).

The workers run with ``worker.lease_replicas = 1``: a claim or renewal counts only once the
replica confirmed the lease, so the promoted replica has the lease of every job still running
and nobody else can claim it. Without it a claim's lease can die with the primary a moment
after it was written, and the job may then run beside itself (at least once, not at most once
at a time); in four runs of this test with 0, none did, the window being one replication lag.
As an orchestrator would, the killed node is started again once its replica took over: it
comes back as the new primary's replica, and until it has synced the new primary's claims are
handed back (``lease_replicas`` trades that availability for the guarantee).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import time
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import cast

import pytest
from redis.asyncio import Redis

from cache.client import create_client
from cache.cluster import slot_of
from jobs.client import enqueue_jobs
from jobs.wire.layout import QueueLayout
from tests.support.cluster import TestCluster
from tests.support.processes import Fleet
from tests.support.waiting import wait_until
from worker.settings import load_settings

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(240)]

SHARDS = 8
LAYOUT = QueueLayout.sharded("arq:queue", SHARDS)
JOBS = 1500
RECOVERY_BOUND = 30.0
"""Seconds from the kill until a job of the killed primary's shards finishes again: the
replica's promotion (about 2-3 s with ``cluster-node-timeout`` 1000 ms) plus the lease of a
job whose finish was lost (2 s here) plus backoff."""


@pytest.fixture
def own_cluster() -> Iterator[TestCluster]:
    with TestCluster() as running:
        yield running


def _client(addr: str) -> Redis:
    settings = load_settings(cache={"addr": addr}, queue={"layout": "sharded", "shards": SHARDS})
    return create_client(settings.queue_cache_settings())


async def _results(client: Redis, ids: list[str]) -> dict[str, dict[str, object]]:
    found: dict[str, dict[str, object]] = {}
    async with client.pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.get(LAYOUT.for_job(job_id).result(job_id))
        replies = await pipe.execute()
    for job_id, raw in zip(ids, replies, strict=True):
        if raw is not None:
            found[job_id] = json.loads(raw)
    return found


async def test_a_primary_killed_under_load_loses_no_job_and_runs_none_twice_at_once(
    own_cluster: TestCluster, tmp_path: Path
) -> None:
    cluster = own_cluster
    client = _client(cluster.addr)
    sections: dict[str, dict[str, object]] = {
        "queue": {"layout": "sharded", "shards": SHARDS},
        "worker": {
            "job_modules": ["tests.support.jobs"],
            "job_lease": 2.0,
            "heartbeat_interval": 0.5,
            "max_jobs": 20,
            "lease_replicas": 1,  # a lease counts once the replica has it: none runs twice
        },
    }
    ids = [f"cf-{i}" for i in range(JOBS)]
    victim_shard = LAYOUT.shards[0]
    victim = cluster.node_for_slot(slot_of(victim_shard.queue))
    victim_slots = cluster.slots_served_by(victim)
    on_victim = [j for j in ids if slot_of(LAYOUT.for_job(j).queue) in victim_slots]
    assert on_victim, "no job lands on the victim's shards"
    try:
        with Fleet(tmp_path, cluster.addr, **sections) as fleet:
            fleet.start(2)
            first, rest = ids[: JOBS // 2], ids[JOBS // 2 :]
            for chunk in range(0, len(first), 250):
                specs = [("test_track", (20,), j) for j in first[chunk : chunk + 250]]
                assert all(await enqueue_jobs(client, specs, layout=LAYOUT))

            async def a_third_done() -> bool:
                return len(await _results(client, first)) >= JOBS // 6

            await wait_until(a_third_done, 60, "a third of the jobs to finish", 0.1)
            os.kill(victim.pid or 0, signal.SIGKILL)
            killed = time.monotonic()
            # the killed node comes back once its replica took over (sooner, it would keep
            # its slots with the empty dataset it restarted with): with lease_replicas = 1 the
            # new primary's jobs run again once this replica confirms their leases
            victim.kill()
            victim_slot = slot_of(victim_shard.queue)
            await asyncio.to_thread(cluster.wait_failover, victim_slot, victim, 30)
            promoted = time.monotonic() - killed
            done_then = await _results(client, on_victim)  # what the promoted replica has
            await asyncio.to_thread(victim.start)
            queued_after: list[str] = []
            for chunk in range(0, len(rest), 250):  # the producer goes on, retrying
                specs = [("test_track", (20,), j) for j in rest[chunk : chunk + 250]]
                deadline = time.monotonic() + RECOVERY_BOUND
                while True:  # a retry finds the ids a failed call's other shards took: fine
                    try:
                        await enqueue_jobs(client, specs, layout=LAYOUT)
                        break
                    except Exception:
                        if time.monotonic() > deadline:
                            raise
                        await asyncio.sleep(0.2)
                queued_after += [j for _, _, j in specs]
            enqueued = time.monotonic() - killed
            waiting = [j for j in on_victim if j not in done_then]

            async def victim_jobs_run_again() -> bool:  # one finished on the promoted node
                return bool(set(await _results(client, waiting)) or not waiting)

            try:
                await wait_until(
                    victim_jobs_run_again, RECOVERY_BOUND, "the killed primary's jobs to run", 0.05
                )
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{fleet.logs()[-6000:]}") from None
            recovery = time.monotonic() - killed

            async def all_done() -> bool:
                return len(await _results(client, ids)) == JOBS

            await wait_until(all_done, 120, f"all {JOBS} jobs to finish", 0.2)
            logs = fleet.logs()
        results = await _results(client, ids)
        runs: dict[str, list[tuple[int, int, str]]] = {}
        for job_id in ids:
            raw = await cast(
                Awaitable[list[bytes]], client.lrange(f"seen:testruns:{job_id}", 0, -1)
            )
            runs[job_id] = [
                (int(a), int(b), w) for a, b, w in (r.decode().split(":", 2) for r in raw)
            ]
    finally:
        await client.aclose()
    assert all(r["s"] is True for r in results.values()), logs[-3000:]
    overlapping = []
    for job_id, entries in runs.items():
        assert entries, f"{job_id} has a result but no recorded run"
        # a run's record sent again by the client's retry (its first reply lost with the
        # primary) is one run, not two
        ordered = sorted(set(entries))
        for (_, end, _), (start, _, _) in itertools.pairwise(ordered):
            if start < end:
                overlapping.append(f"{job_id}: {ordered}")
    assert not overlapping, f"runs overlapped: {overlapping[:10]}"
    twice = sum(1 for e in runs.values() if len(e) > 1)
    print(  # the recovery figure for the note (and docs/operations.md)
        f"\nqueue failover: {JOBS} jobs, {len(on_victim)} on the killed primary's shards; "
        f"replica promoted after {promoted:.1f}s, producer through after {enqueued:.1f}s, "
        f"first of them done {recovery:.1f}s after the kill; {twice} job(s) ran again "
        f"(finish lost with the primary), none at the same time"
    )
