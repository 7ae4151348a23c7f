"""Coalescing survives a worker killed mid-drain (SIGKILL) and producers' lost enqueues.

A drain consumes each slot atomically with applying it, so a killed drain loses nothing it
touched; what it had not reached stays pending and is drained by the next drain (scheduled by
the next put, or by ``repair`` once the killed drain's lease has run out). The killed worker's
jobs stay in ARQ's queue until their in-progress keys expire (ARQ then re-runs them, harmlessly),
so convergence is judged by the pending updates, not by the queue length.
"""

from __future__ import annotations

import asyncio

from cache.download import ProgressUpdate, PublishOutcome
from cache.manager import CacheManager
from jobs.client import ProgressPublisher
from tests.conftest import TestServer, cache_config_for
from tests.support.processes import ArqWorkerProcess
from tests.support.updates import upd
from tests.support.waiting import wait_until

DOWNLOADS = 300
ROUNDS = 40


async def test_worker_killed_mid_run_and_a_producer_dying_before_enqueue(
    server: TestServer,
) -> None:
    config = cache_config_for(server.url, connect_timeout=2.0, socket_timeout=5.0, retries=3)
    config = config.model_copy(
        update={"download": config.download.model_copy(update={"pending_lease": 0.3})}
    )
    async with await CacheManager.connect(config) as manager:
        await manager.client.flushdb()
        publisher = ProgressPublisher(manager)
        victim, survivor, replacement = (ArqWorkerProcess(server.url) for _ in range(3))
        with victim, survivor:

            async def produce() -> None:
                for k in range(1, ROUNDS + 1):
                    batch: list[ProgressUpdate] = [upd(f"dl-{d}", k) for d in range(DOWNLOADS)]
                    for start in range(0, DOWNLOADS, 50):
                        await publisher.publish_many(batch[start : start + 50])
                    await asyncio.sleep(0.02)

            async def converged() -> bool:
                await publisher.repair()  # what the periodic repair job does
                return await manager.download.pending_count() == 0

            producing = asyncio.create_task(produce())
            await asyncio.sleep(0.6)
            victim.kill()  # mid-drain, mid-pipeline: whatever it was doing
            with replacement:
                await producing
                await wait_until(converged, 30, "updates left pending to be applied", interval=0.2)
                # A producer that dies between its put and its enqueue: its put schedules a
                # drain that is never enqueued (unless one was still scheduled: also fine). A
                # drain enqueued but not yet run when the pending set emptied is still
                # scheduled; older than the 0.3 s lease, the put reschedules it (RESCHEDULED):
                # the same case as SCHEDULED, a new drain id nobody enqueues.
                crashed = await manager.download.publish(upd("dl-0", ROUNDS + 1))
                assert crashed.outcome in (
                    PublishOutcome.SCHEDULED,
                    PublishOutcome.RESCHEDULED,
                    PublishOutcome.COALESCED,
                )
                await wait_until(converged, 30, "the orphaned put to be applied", interval=0.2)
        states = await manager.download.get_many([f"dl-{d}" for d in range(DOWNLOADS)])
        seqs = {s.seq if s else None for s in states[1:]}
        assert seqs == {ROUNDS}
        assert states[0] is not None and states[0].seq == ROUNDS + 1
