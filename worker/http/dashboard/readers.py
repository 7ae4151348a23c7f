"""What the overview, schedules, dead-letter and locks pages show, read from the stores.

Read-only and bounded: every list has a limit, locks are found with ``SCAN`` (never ``KEYS``)
and at most ``limit`` keys are looked at. Job rates are the difference of the fleet's job
counters between two reads of this process (``RateMeter``).
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from arq.constants import in_progress_key_prefix
from redis.asyncio import Redis

from cache.codec import as_text
from cache.errors import translate_errors
from cache.manager import CacheManager
from jobs.deadletter import read_dead_letters
from jobs.schedule import now_ms, owed_window, slot_of
from jobs.stats import collect
from worker.health import evaluate
from worker.http.dashboard.actions import letter_id
from worker.settings import Settings


@dataclass
class RateMeter:
    """Jobs per second from two successive reads of the fleet counters."""

    last: tuple[float, dict[str, int]] | None = None

    def update(self, counters: dict[str, int]) -> dict[str, float | None]:
        now = time.monotonic()
        previous, self.last = self.last, (now, counters)
        if previous is None or now - previous[0] <= 0:
            return dict.fromkeys(counters)
        dt = now - previous[0]
        return {k: round(max(0, v - previous[1].get(k, 0)) / dt, 2) for k, v in counters.items()}


async def overview(
    manager: CacheManager, queue: Redis, settings: Settings, rates: RateMeter
) -> dict[str, Any]:
    verdict = await evaluate(manager, queue, settings)
    stats = await collect(manager, queue, settings.queue.name)
    counters = stats.jobs.model_dump()
    return {
        "healthy": verdict.healthy,
        "reasons": verdict.reasons,
        "workers": [
            {
                "worker_id": w["worker_id"],
                "host": w.get("host", ""),
                "state": w.get("state", ""),
                "age_s": w.get("age_s"),
                "fresh": w.get("fresh"),
                "running": w.get("running", 0),
                "done": w.get("done"),
                "failed": w.get("failed"),
            }
            for w in verdict.workers
        ],
        "queue": stats.queue.model_dump(),
        "jobs": counters,
        "job_rates": rates.update(counters),
        "cache": {
            "hit_rate": stats.hit_rate,
            "memory_used": stats.used_memory,
            "memory_max": stats.max_memory,
            "memory_ratio": stats.memory_ratio,
            "keys": stats.keys,
            "ops_per_sec": stats.ops_per_sec,
            "evicted_keys": stats.evicted_keys,
        },
        "active_downloads": stats.active_downloads,
    }


def periodic_jobs(settings: Settings) -> dict[str, int]:
    """Name -> period (s) of every enabled slot-claiming periodic job."""
    from worker.cron import SCHEDULED

    periods = {f.__name__: settings.maintenance.period(f.__name__) for f in SCHEDULED}
    return {name: period for name, period in periods.items() if period > 0}


async def schedules(
    manager: CacheManager, queue: Redis, settings: Settings, history: int = 20
) -> list[dict[str, Any]]:
    """Per periodic job: the recent slots' states, counts and run history.

    A slot's claim lives two periods plus a minute, so the window is the slots whose claims
    may still exist (``jobs.schedule.owed_window``): ``done``, ``claimed`` (running or owed),
    ``missed`` (a past slot with no claim), ``due`` (the current one, not yet claimed).
    ``skipped`` counts history runs that skipped or deferred.
    """
    out = []
    now = now_ms()
    keys = manager.keys
    for name, period in periodic_jobs(settings).items():
        current = slot_of(now, period)
        window = list(owed_window(current, period))
        with translate_errors(keys.cron_slot(name, current), operation="GET cron slots"):
            async with queue.pipeline(transaction=False) as pipe:
                for slot in window:
                    pipe.get(keys.cron_slot(name, slot))
                pipe.lrange(keys.cron_history(name), 0, history - 1)
                replies = await pipe.execute()
        slots = []
        for slot, raw in zip(window, replies[:-1], strict=True):
            value = as_text(raw) if raw is not None else ""
            if value.startswith("done:"):
                state = "done"
            elif value.startswith("run:"):
                state = "claimed"
            else:
                state = "due" if slot == current else "missed"
            slots.append(
                {"slot": slot, "at_ms": slot * period * 1000, "state": state, "holder": value}
            )
        runs = [json.loads(r) for r in replies[-1]]
        counts = defaultdict(int)
        for s in slots:
            counts[s["state"]] += 1
        counts["expected"] = len(slots)
        counts["skipped"] = sum(str(r.get("outcome")) in ("skipped", "deferred") for r in runs)
        out.append(
            {"name": name, "period_s": period, "counts": dict(counts), "slots": slots, "runs": runs}
        )
    return out


async def dead_letters(manager: CacheManager, limit: int, payload_chars: int) -> dict[str, Any]:
    """The newest ``limit`` letters, grouped by reason; payloads cut to ``payload_chars``."""
    key = manager.keys.dead_letter()
    with translate_errors(key, operation="LRANGE dead letters"):
        raw_items: list[bytes] = await manager.client.lrange(key, 0, limit - 1)  # type: ignore[misc]
        total = int(await manager.client.llen(key))  # type: ignore[misc]
    letters = await read_dead_letters(manager, limit)
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for raw, letter in zip(raw_items, letters, strict=False):
        payload = letter.payload
        cut = letter.truncated or len(payload) > payload_chars
        groups[letter.reason].append(
            {
                "id": letter_id(raw),
                "at_ms": letter.at_ms,
                "job_id": letter.job_id,
                "function": letter.function,
                "payload": payload[:payload_chars],
                "truncated": cut,
            }
        )
    ordered = sorted(groups.items(), key=lambda kv: -len(kv[1]))
    return {
        "total": total,
        "shown": len(letters),
        "groups": [{"reason": r, "count": len(items), "letters": items} for r, items in ordered],
    }


async def _scan(client: Redis, pattern: str, limit: int) -> list[str]:
    found: list[str] = []
    async for key in client.scan_iter(match=pattern, count=500):
        found.append(as_text(key))
        if len(found) >= limit:
            break
    return found


async def _leases(client: Redis, keys: list[str], kind: str) -> list[dict[str, Any]]:
    if not keys:
        return []
    async with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.get(key)
            pipe.pttl(key)
            pipe.get(f"{key}:fence")
        replies = await pipe.execute()
    out = []
    for n, key in enumerate(keys):
        holder, ttl_ms, fence = replies[3 * n : 3 * n + 3]
        if holder is None:
            continue  # released between SCAN and GET
        out.append(
            {
                "kind": kind,
                "key": key,
                "holder": as_text(holder)[:80],
                "fence": int(fence) if fence is not None else None,
                "ttl_s": round(ttl_ms / 1000, 3) if ttl_ms is not None and ttl_ms >= 0 else None,
            }
        )
    return out


async def locks(manager: CacheManager, queue: Redis, limit: int) -> list[dict[str, Any]]:
    """Locks (cache store), run guards (queue store) and job leases (ARQ in-progress keys)."""
    pattern = manager.keys.pattern("lock")
    with translate_errors(None, operation="SCAN locks"):
        lock_keys = [k for k in await _scan(manager.client, pattern, limit) if not k.endswith(":fence")]
        rows = await _leases(manager.client, lock_keys, "lock")
        guard_keys = [k for k in await _scan(queue, pattern, limit) if not k.endswith(":fence")]
        rows += [r for r in await _leases(queue, guard_keys, "run guard") if r["key"] not in lock_keys]
        lease_keys = await _scan(queue, in_progress_key_prefix + "*", limit)
        rows += await _leases(queue, lease_keys, "job lease")
    return rows[:limit]
