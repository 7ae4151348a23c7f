"""A store paused longer than the job lease never runs one job twice at once.

Two real workers; the store is frozen (SIGSTOP) for twice ``job_lease`` while one of them runs
a job. The holder cannot renew, so at its lease deadline it cancels the job; after the store
comes back the job runs again (on either worker) and finishes. The job body records its start
and end in a local file: no two runs may overlap, exactly one run completes, and exactly one
result stands. The holder's late finish is refused by its lease token.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from tests.support.processes import Fleet, queue_pool
from tests.support.waiting import wait_until
from worker.embedded import EmbeddedServer

LEASE_S = 2.0
PAUSE_S = 2 * LEASE_S + 0.5
BODY_S = 8.0
INTERVALS: dict[str, Any] = {"callables": ["tests.support.sources:interval_source"]}


def _runs(path: Path) -> dict[str, dict[str, float]]:
    runs: dict[str, dict[str, float]] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            run, what, at = line.split()
            runs.setdefault(run, {})[what] = float(at)
    return runs


@pytest.mark.timeout(120)
async def test_pause_longer_than_the_lease_never_overlaps_two_runs(
    tmp_path: Path, private_server: EmbeddedServer
) -> None:
    intervals = tmp_path / "intervals.txt"
    env = {"SEEN_TEST_INTERVALS": str(intervals), "SEEN_TEST_SLOW_SECONDS": str(BODY_S)}
    addr = private_server.addr
    raw = Redis.from_url(private_server.url, decode_responses=True)
    pool = queue_pool(addr)
    sections: dict[str, Any] = {
        "worker": {"job_lease": LEASE_S, "heartbeat_interval": 0.5, "heartbeat_ttl": 10.0},
        "warmup": INTERVALS,
        "maintenance": {"timeout": 60.0, "max_tries": 5},
    }
    try:
        with Fleet(tmp_path, addr, **sections) as fleet:
            fleet.start(2, **env)
            job = await pool.enqueue_job("warmup_cache", _job_id="pause-me")
            assert job is not None

            async def started() -> bool:
                return bool(_runs(intervals))

            await wait_until(started, 20, "the job to start")
            await asyncio.sleep(0.5)
            pid = private_server.pid
            assert pid is not None
            os.kill(pid, signal.SIGSTOP)
            frozen_at = time.time()
            try:
                await asyncio.sleep(PAUSE_S)
            finally:
                os.kill(pid, signal.SIGCONT)

            async def finished() -> bool:
                return any("end" in r for r in _runs(intervals).values())

            await wait_until(finished, BODY_S + 20, "a run of the job to complete")
            await asyncio.sleep(1.0)  # the late holder's finish, if any, would land by now
            info = await job.result_info()
            logs = fleet.logs()
    finally:
        await pool.aclose()
    runs = _runs(intervals)
    await raw.aclose()
    spans = sorted(
        (r["start"], r.get("end", r.get("cancelled", float("inf"))), name)
        for name, r in runs.items()
    )
    for (_, end_a, a), (start_b, _, b) in itertools.pairwise(spans):
        assert end_a <= start_b, f"runs {a} and {b} overlapped by {end_a - start_b:.2f}s\n{logs}"
    completed = [name for name, r in runs.items() if "end" in r]
    assert len(completed) == 1, f"{runs}\n{logs}"
    first = spans[0]
    assert "cancelled" in runs[first[2]], "the holder should have been cancelled"
    assert first[1] - frozen_at < LEASE_S + 0.5, "cancelled only after its lease had run out"
    print(
        f"\nholder cancelled {first[1] - frozen_at:.2f}s into a {PAUSE_S}s pause"
        f" (lease {LEASE_S}s);"
        f" next run started {spans[1][0] - first[1]:.2f}s after that; runs: {len(runs)}"
    )
    assert info is not None and info.success, logs
    assert "lease lost" in logs
    assert "no longer holds its lease" in logs  # the stale finish was refused
