"""``worker.lease_replicas``: a claim counts only once a replica confirmed its lease (``WAIT``).

On a primary without a replica every claim is handed back unrun (the job stays queued, its try
given back, a warning says why); once a replica attaches, the same job runs, and its lease on
the replica is the primary's (a failover would keep it). The cluster form of this is in
``tests/reliability/test_queue_cluster_failover.py``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from redis.asyncio import Redis

from jobs.client import enqueue_jobs
from tests.support.engine import engine_on, functions
from tests.support.layout import LAYOUT
from tests.support.waiting import wait_until
from worker.embedded import EmbeddedServer

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def primary() -> Iterator[EmbeddedServer]:
    with EmbeddedServer(
        os.environ.get("SEEN_TEST_SERVER") or None,
        extra_args=("--repl-diskless-sync-delay", "0"),
    ) as server:
        yield server


@pytest.fixture
async def store(primary: EmbeddedServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(primary.url)
    yield client
    await client.aclose()


async def test_claims_wait_for_a_replica_and_run_once_one_confirms(
    primary: EmbeddedServer, store: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    ran: list[str] = []
    release = asyncio.Event()

    async def held(ctx: dict[str, Any]) -> str:
        ran.append(str(ctx["job_id"]))
        await asyncio.wait_for(release.wait(), 30)
        return "ok"

    table = functions({"held": held})
    shard = LAYOUT.for_job("r-1")
    assert all(await enqueue_jobs(store, [("held", (), "r-1")], layout=LAYOUT))
    with caplog.at_level(logging.WARNING, "seen.worker"):
        async with engine_on(
            primary.url, table, lease_replicas=1, replica_timeout_ms=50, poll_delay_s=0.05
        ):

            async def handed_back_twice() -> bool:
                return caplog.text.count("no replica confirmed their leases") >= 2

            await wait_until(handed_back_twice, 20, "claims to be handed back")
            assert ran == []
            assert await store.zscore(shard.queue, "r-1") is not None  # still queued

            with EmbeddedServer(
                os.environ.get("SEEN_TEST_SERVER") or None,
                extra_args=("--replicaof", "127.0.0.1", str(primary.port)),
            ) as replica:
                replica_client = Redis.from_url(replica.url)
                try:

                    async def running() -> bool:
                        return ran == ["r-1"]

                    await wait_until(running, 30, "the job to run once the replica is there")
                    lease_key = shard.in_progress("r-1")
                    token = await store.get(lease_key)

                    async def replica_has_the_lease() -> bool:
                        return token is not None and await replica_client.get(lease_key) == token

                    await wait_until(replica_has_the_lease, 10, "the lease on the replica")
                    release.set()

                    async def finished() -> bool:
                        return bool(await store.exists(shard.result("r-1")))

                    await wait_until(finished, 10, "the job's result")
                    result = json.loads(await store.get(shard.result("r-1")) or "{}")
                    assert result["t"] == 1  # every handed-back claim gave its try back
                finally:
                    await replica_client.aclose()
    assert ran == ["r-1"]


async def test_a_running_job_whose_renewals_no_replica_confirms_is_given_up_at_its_deadline(
    primary: EmbeddedServer, store: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def long(ctx: dict[str, Any]) -> str:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "ok"

    table = functions({"long": long})
    replica = EmbeddedServer(
        os.environ.get("SEEN_TEST_SERVER") or None,
        extra_args=("--replicaof", "127.0.0.1", str(primary.port)),
    ).start()
    try:
        async with engine_on(
            primary.url,
            table,
            lease_replicas=1,
            replica_timeout_ms=100,
            job_lease_s=1.5,
            renew_every_s=0.2,
        ):
            assert all(await enqueue_jobs(store, [("long", (), "g-1")], layout=LAYOUT))
            await asyncio.wait_for(started.wait(), 30)
            with caplog.at_level(logging.WARNING, "seen.worker"):
                replica.stop()  # the renewals go on on the primary, unconfirmed
                loop = asyncio.get_running_loop()
                gone = loop.time()
                await asyncio.wait_for(cancelled.wait(), 20)
                waited = loop.time() - gone

                async def said_so() -> bool:
                    return "job g-1: lease lost (no renewal was confirmed" in caplog.text

                await wait_until(said_so, 10, "the warning about the job given up")
            # given up no later than its last confirmed lease (1.5 s) plus the checks' slack
            assert waited < 1.5 + 3.0, waited
    finally:
        replica.stop()
