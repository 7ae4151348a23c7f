"""A scheduled run cancelled by SIGTERM hands its slot back: its work is done once, at once.

Real ``seen-worker run`` processes. ``warmup_cache`` runs every 10 s with a slow source
(``tests.support.sources:slow_source``); the worker running a slot gets SIGTERM with a 0.5 s grace,
so the run is cancelled mid-body. ARQ alone keeps a cancelled cron job's in-progress marker for
60 s and its retry then meets the next slots; here the slot must be done by its retry within
seconds, on the other worker or on the restarted one, and recorded as done, never twice.
"""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from tests.conftest import TestServer
from tests.support.processes import Fleet, WorkerProcess
from tests.support.sources import SLOW_EVENTS
from tests.support.waiting import fresh_beats, items, wait_until

PERIOD = 10
SLOW_SECONDS = 2.5
GRACE = 0.5
LEASE = 2.0  # worker.job_lease in tests.support.processes.write_settings
SECTIONS: dict[str, dict[str, Any]] = {
    "maintenance": {"warmup_every": PERIOD, "timeout": 30.0},
    "warmup": {"callables": ["tests.support.sources:slow_source"]},
    "worker": {"shutdown_grace": GRACE},
}
ENV = {"SEEN_TEST_SLOW_SECONDS": str(SLOW_SECONDS)}


async def _running_claim(raw: Redis) -> tuple[int, str]:
    """The slot being run now and its cron job id, from its ``run:<id>`` claim."""
    async for key in raw.scan_iter("seen:cron:warmup_cache:*"):
        value = await raw.get(key)
        if value is not None and value.startswith("run:"):
            return int(key.rsplit(":", 1)[1]), value[len("run:") :]
    raise AssertionError("no running slot claim")


async def _history(raw: Redis, slot: int) -> list[dict[str, Any]]:
    runs = [json.loads(x) for x in await items(raw, "seen:cronlog:warmup_cache")]
    return [r for r in runs if r["slot"] == slot]


async def _start_and_stop(
    fleet: Fleet, raw: Redis, signum: int = signal.SIGTERM
) -> tuple[WorkerProcess, int, str, float]:
    """Wait for a slot's run to start, signal its worker; returns (victim, slot, id, when)."""

    async def started() -> bool:
        return len(await items(raw, SLOW_EVENTS)) >= 1

    await wait_until(started, PERIOD + 10, "a scheduled warmup_cache run to start")
    slot, job_id = await _running_claim(raw)
    victim_pid = int((await items(raw, SLOW_EVENTS))[0].split(":")[1])
    (victim,) = [w for w in fleet.workers if w.pid == victim_pid]
    victim.signal(signum)
    return victim, slot, job_id, time.monotonic()


async def _slot_done(raw: Redis, slot: int, job_id: str, within: float) -> float:
    async def done() -> bool:
        value: str | None = await raw.get(f"seen:cron:warmup_cache:{slot}")
        return value == f"done:{job_id}"

    return await wait_until(done, within, f"slot {slot} done by its retry", interval=0.05)


def _assert_once_per_slot(runs: list[dict[str, Any]]) -> None:
    done = Counter(r["slot"] for r in runs if r["outcome"] == "ok")
    assert all(n == 1 for n in done.values()), f"slots done more than once: {done}"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
async def test_stopped_slot_is_done_once_by_another_worker(
    tmp_path: Path, server: TestServer, raw: Redis, signum: int
) -> None:
    """SIGTERM: handed back, done at once. SIGKILL: nothing handed back; the lease expires."""
    with Fleet(tmp_path, server.addr, **SECTIONS) as fleet:
        fleet.start(2, **ENV)

        async def both_up() -> bool:
            return len(await fresh_beats(raw)) == 2

        await wait_until(both_up, 30, "two worker heartbeats")
        victim, slot, job_id, stopped = await _start_and_stop(fleet, raw, signum)
        (survivor,) = [w for w in fleet.workers if w is not victim]
        # ARQ alone: the retry waits 60 s (keep_cronjob_progress), past the next slots.
        handover = GRACE if signum == signal.SIGTERM else LEASE
        await _slot_done(raw, slot, job_id, within=handover + SLOW_SECONDS + 4)
        elapsed = time.monotonic() - stopped
        code = victim.wait(10)
        assert survivor.running
        survivor.stop()
        logs = fleet.logs()
    assert code == (0 if signum == signal.SIGTERM else -signal.SIGKILL), logs
    assert elapsed < PERIOD - 1, elapsed
    assert await items(raw, SLOW_EVENTS) == [
        f"start:{victim.pid}",
        f"start:{survivor.pid}",
        f"done:{survivor.pid}",
    ], logs
    runs = await _history(raw, slot)
    expected = [("ok", 2, job_id)]
    if signum == signal.SIGTERM:
        expected.append(("cancelled", 1, job_id))
    assert [(r["outcome"], r["try"], r["job_id"]) for r in runs] == expected, logs
    assert f"-{survivor.pid}-" in runs[0]["worker"]
    _assert_once_per_slot([json.loads(x) for x in await items(raw, "seen:cronlog:warmup_cache")])
    assert not await raw.exists("seen:lock:{maintenance:warmup_cache}")


@pytest.mark.timeout(60)
async def test_cancelled_slot_is_done_at_once_after_a_restart(
    tmp_path: Path, server: TestServer, raw: Redis
) -> None:
    with Fleet(tmp_path, server.addr, **SECTIONS) as fleet:
        fleet.start(1, **ENV)

        async def up() -> bool:
            return len(await fresh_beats(raw)) >= 1

        await wait_until(up, 30, "the worker's heartbeat")
        victim, slot, job_id, _ = await _start_and_stop(fleet, raw)
        assert victim.wait(10) == 0, victim.log()
        (restarted,) = fleet.start(1, **ENV)
        restarted_at = time.monotonic()
        # The retry starts as soon as the new worker polls; ARQ alone holds it for 60 s.
        await _slot_done(raw, slot, job_id, within=SLOW_SECONDS + 8)
        elapsed = time.monotonic() - restarted_at
        restarted.stop()
        logs = fleet.logs()
    assert elapsed < PERIOD, elapsed
    events = await items(raw, SLOW_EVENTS)
    assert events[:3] == [
        f"start:{victim.pid}",
        f"start:{restarted.pid}",
        f"done:{restarted.pid}",
    ], logs
    runs = await _history(raw, slot)
    assert [(r["outcome"], r["try"]) for r in runs] == [("ok", 2), ("cancelled", 1)], logs
    _assert_once_per_slot([json.loads(x) for x in await items(raw, "seen:cronlog:warmup_cache")])
