"""How a periodic run ends when it is cancelled or meets another run (in-process, real server).

The worker-level behaviour (SIGTERM, two processes) is in tests/reliability/test_cron_handback.py;
here each ending is driven exactly: a run task cancelled mid-body, a cancel landing after the
body finished, a retry meeting the next slot's run, a run closed by a later run meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from redis.asyncio import Redis

from cache.manager import CacheManager
from jobs import maintenance
from jobs.schedule import slot_of
from tests.conftest import TestServer
from tests.integration.test_maintenance import make_ctx
from tests.support.layout import QUEUE_SECTION
from tests.support.sources import SLOW_EVENTS
from tests.support.waiting import items, wait_until
from worker.runtime import WorkerRuntime
from worker.settings import Settings, load_settings

HOUR = 3600  # warmup_every by default
FIVE_MIN = 300  # stats_every by default


def cron_id(name: str, slot: int, period: int) -> str:
    """ARQ's cron id of a slot (scheduled 123 ms into it, like a slightly late enqueue)."""
    return f"{name}:{slot * period * 1000 + 123}"


def current_slot(period: int) -> int:
    return slot_of(int(time.time() * 1000), period)


@pytest.fixture
def slow_settings(server: TestServer, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("SEEN_TEST_SLOW_SECONDS", "0.4")
    return load_settings(
        queue=QUEUE_SECTION,
        cache={"addr": server.addr},
        warmup={"callables": ["tests.support.sources:slow_source"]},
    )


async def runs(raw: Redis, job: str) -> list[dict[str, Any]]:
    return [json.loads(x) for x in await items(raw, f"seen:cronlog:{job}")]


async def started(raw: Redis, count: int) -> None:
    async def enough() -> bool:
        return len(await items(raw, SLOW_EVENTS)) >= count

    await wait_until(enough, 5, f"{count} slow source start(s)")


@pytest.mark.parametrize(
    ("state", "warmup_every", "freed"),
    [
        ("stopping", HOUR, True),  # shutdown: ARQ re-queues it, keeping its marker 60 s
        ("running", HOUR, False),  # a timeout or an abort: ARQ ends that job itself
        ("stopping", 0, False),  # not a cron function: ARQ deletes the marker itself
    ],
)
async def test_cancelled_run_hands_its_slot_back(
    manager: CacheManager,
    raw: Redis,
    server: TestServer,
    slow_settings: Settings,
    state: str,
    warmup_every: int,
    freed: bool,
) -> None:
    settings = load_settings(
        queue=QUEUE_SECTION,
        cache={"addr": server.addr},
        warmup={"callables": ["tests.support.sources:slow_source"]},
        maintenance={"warmup_every": warmup_every},
    )
    runtime = WorkerRuntime(settings)
    runtime.state = state
    job_id = cron_id("warmup_cache", current_slot(HOUR), HOUR)
    slot = current_slot(HOUR) if warmup_every else None
    marker = settings.queue.key_layout().for_job(job_id).in_progress(job_id)
    await raw.set(marker, "1", px=60_000)  # what ARQ set when the job started
    run = asyncio.create_task(
        maintenance.warmup_cache(make_ctx(manager, settings, job_id, runtime=runtime))
    )
    await started(raw, 1)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert not await raw.exists("seen:lock:{maintenance:warmup_cache}")
    assert bool(await raw.exists(marker)) is not freed
    if slot is not None:  # kept for the retry of this job id: owed, resumable, no one else's
        assert await raw.get(f"seen:cron:warmup_cache:{slot}") == f"run:{job_id}"
    (entry,) = await runs(raw, "warmup_cache")
    assert (entry["slot"], entry["outcome"]) == (slot, "cancelled")
    events = await items(raw, SLOW_EVENTS)
    assert len(events) == 1 and events[0].startswith("start:")  # cancelled before "done"


async def test_cancel_after_the_body_finished_still_closes_the_slot(
    manager: CacheManager, raw: Redis, slow_settings: Settings
) -> None:
    slot = current_slot(FIVE_MIN)
    job_id = cron_id("log_cache_stats", slot, FIVE_MIN)
    marker = slow_settings.queue.key_layout().for_job(job_id).in_progress(job_id)
    await raw.set(marker, "1", px=60_000)
    runtime = WorkerRuntime(slow_settings)
    runtime.state = "stopping"
    did: list[int] = []

    async def body() -> dict[str, Any]:
        did.append(1)
        task = asyncio.current_task()
        assert task is not None
        task.cancel()  # lands on the run's next await: closing it
        return {"did": 1}

    ctx = make_ctx(manager, slow_settings, job_id, runtime=runtime)
    with pytest.raises(asyncio.CancelledError):
        await maintenance.run_maintenance(ctx, "log_cache_stats", body)
    assert did == [1]
    # Done, not handed back: a retry of this id finds the slot done and skips.
    assert await raw.get(f"seen:cron:log_cache_stats:{slot}") == f"done:{job_id}"
    assert not await raw.exists("seen:lock:{maintenance:log_cache_stats}")
    assert await raw.exists(marker)
    assert [r["outcome"] for r in await runs(raw, "log_cache_stats")] == ["ok"]
    retry = await maintenance.run_maintenance(ctx | {"job_try": 2}, "log_cache_stats", body)
    assert retry == {"skipped": "slot already ran", "slot": slot}
    assert did == [1]


async def test_retry_meeting_the_next_slots_run_is_done_by_it(
    manager: CacheManager, raw: Redis, slow_settings: Settings
) -> None:
    now_slot = current_slot(HOUR)
    earlier, later = now_slot - 1, now_slot
    first = cron_id("warmup_cache", earlier, HOUR)
    nxt = cron_id("warmup_cache", later, HOUR)
    # Try 1 of the earlier slot is cancelled mid-body (its worker stopped).
    cancelled = asyncio.create_task(
        maintenance.warmup_cache(make_ctx(manager, slow_settings, first))
    )
    await started(raw, 1)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    # The next slot's run starts; the earlier slot's retry arrives while it holds the guard.
    running = asyncio.create_task(maintenance.warmup_cache(make_ctx(manager, slow_settings, nxt)))
    await started(raw, 2)
    retry = await maintenance.warmup_cache(make_ctx(manager, slow_settings, first, job_try=2))
    assert retry["skipped"] == "another run in progress"
    assert await raw.get(f"seen:cron:warmup_cache:{earlier}") == f"run:{first}"  # still owed
    done = await running
    assert "skipped" not in done and done["written"] == 1
    # The next slot's run started after the earlier slot's time: it did that work too.
    assert await raw.get(f"seen:cron:warmup_cache:{earlier}") == f"done:{nxt}"
    assert await raw.get(f"seen:cron:warmup_cache:{later}") == f"done:{nxt}"
    late = await maintenance.warmup_cache(make_ctx(manager, slow_settings, first, job_try=3))
    assert late == {"skipped": "slot already ran", "slot": earlier}
    history = [
        (r["job_id"], r["outcome"], r.get("covered")) for r in await runs(raw, "warmup_cache")
    ]
    assert history == [
        (nxt, "ok", [earlier]),
        (first, "deferred", None),
        (first, "cancelled", None),
    ]
    events = await items(raw, SLOW_EVENTS)
    assert [e.split(":")[0] for e in events] == ["start", "start", "done"]  # one body finished


async def test_run_closed_by_a_later_run_meanwhile_does_not_run_again(
    manager: CacheManager, raw: Redis, settings: Settings
) -> None:
    now_slot = current_slot(FIVE_MIN)
    earlier = cron_id("log_cache_stats", now_slot - 1, FIVE_MIN)
    later = cron_id("log_cache_stats", now_slot, FIVE_MIN)
    claimed = asyncio.Event()
    go_on = asyncio.Event()
    bodies: list[str] = []

    def body_of(job_id: str) -> Any:
        async def body() -> dict[str, Any]:
            bodies.append(job_id)
            return {}

        return body

    async def prelude() -> dict[str, Any]:  # runs after the claim, before the guard
        claimed.set()
        await asyncio.wait_for(go_on.wait(), 5)
        return {}

    slow = asyncio.create_task(
        maintenance.run_maintenance(
            make_ctx(manager, settings, earlier),
            "log_cache_stats",
            body_of(earlier),
            prelude=prelude,
        )
    )
    await asyncio.wait_for(claimed.wait(), 5)
    await maintenance.run_maintenance(
        make_ctx(manager, settings, later), "log_cache_stats", body_of(later)
    )
    go_on.set()
    assert await slow == {"skipped": "slot already ran", "slot": now_slot - 1}
    assert bodies == [later]
    assert await raw.get(f"seen:cron:log_cache_stats:{now_slot - 1}") == f"done:{later}"
    assert not await raw.exists("seen:lock:{maintenance:log_cache_stats}")


@pytest.fixture
def settings(server: TestServer) -> Settings:
    return load_settings(queue=QUEUE_SECTION, cache={"addr": server.addr})
