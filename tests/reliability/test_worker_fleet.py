"""Three real worker processes on one store: each scheduled slot runs exactly once.

Besides the fleet's own cron enqueues, the test replays python-arq/arq#196: it enqueues the
cron id of slots that already ran again, as a worker with a lagging clock does once ARQ's
60 s in-progress marker is gone (deleted here instead of waited for). ARQ alone runs those
copies again; the slot claims must skip them.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

from redis.asyncio import Redis

from tests.conftest import TestServer
from tests.support.layout import lease_key
from tests.support.processes import Fleet, queue_pool
from tests.support.waiting import fresh_beats, items, wait_until


async def _slots(raw: Redis, job: str) -> list[int]:
    runs = [json.loads(x) for x in await items(raw, f"seen:cronlog:{job}")]
    return [r["slot"] for r in runs if r["slot"] is not None]


async def test_three_workers_run_each_slot_exactly_once(
    tmp_path: Path, server: TestServer, raw: Redis
) -> None:
    schedule = {"stats_every": 1, "cleanup_every": 2}
    with Fleet(tmp_path, server.addr, maintenance=schedule) as fleet:
        fleet.start(3)

        async def all_up() -> bool:
            return len(await fresh_beats(raw)) == 3

        await wait_until(all_up, 30, "three worker heartbeats")
        fleet_up = time.time()
        await wait_until(lambda: _after(raw, fleet_up + 2), 15, "two slots", interval=0.1)
        pool = queue_pool(server.addr)
        try:
            for slot in sorted(set(await _slots(raw, "log_cache_stats")))[-2:]:
                job_id = f"log_cache_stats:{slot * 1000 + 123}"
                await raw.delete(lease_key(job_id))
                assert await pool.enqueue_job("log_cache_stats", _job_id=job_id) is not None
        finally:
            await pool.aclose()
        await wait_until(
            lambda: _after(raw, fleet_up + 5), 15, "five seconds of slots", interval=0.2
        )
        beats = await fresh_beats(raw)
        codes = fleet.stop_all()
    assert codes == [0, 0, 0], fleet.logs()
    assert len({b.worker_id for b in beats}) == 3

    stats_slots = await _slots(raw, "log_cache_stats")
    repeated = {s: n for s, n in Counter(stats_slots).items() if n > 1}
    assert not repeated, f"slots run more than once: {repeated}"
    assert "already ran or is running elsewhere; skipped" in fleet.logs()
    first_full = int(fleet_up) + 1
    expected = set(range(first_full, first_full + 4))
    assert expected <= set(stats_slots), f"missed slots {expected - set(stats_slots)}"

    cleanup_slots = await _slots(raw, "cleanup_stale_progress")
    assert len(cleanup_slots) == len(set(cleanup_slots)) >= 2
    # All three removed their own heartbeats on the way out.
    assert await raw.zcard("seen:workers") == 0


async def _after(raw: Redis, moment: float) -> bool:
    slots = await _slots(raw, "log_cache_stats")
    return bool(slots) and max(slots) >= moment
