"""Exactly once per scheduled slot across a fleet of workers.

ARQ's cron gives each scheduled run the job id ``<name>:<scheduled unix ms>`` and relies on that
id to run it once, but a copy enqueued after the first one finished (a slow or skewed worker, an
expired result key) runs again (python-arq/arq#196). On top of that id we keep a durable claim
per slot: ``slot = scheduled seconds // period``, claimed with one script (SET NX with a TTL of
two periods plus a minute) before the job body runs and marked done after it. A retry of the same
job id (its worker died or was stopped) resumes the claim; any other copy skips.

A claim ``run:<id>`` is a slot whose work is owed; ``done:<id>`` names the run that did it. A
later run that finishes its body closes the owed slots scheduled before its body started
(``cover``): its work includes theirs, since every periodic job brings state up to date
(idempotent batch work), so a slot whose own run was cancelled or deferred is done once.

Periods must fit ARQ's cron fields and divide a UTC day, so every worker computes the same
slot boundaries: a divisor of 60 below a minute, whole minutes dividing an hour, or whole hours
dividing a day. The worker runs cron in UTC.
"""

from __future__ import annotations

import enum
import json
import logging
import re
from collections.abc import Awaitable, Iterable
from typing import Any, cast

from redis.asyncio import Redis

from cache.clock import wall_ms
from cache.codec import as_text
from cache.errors import CorruptKeyError, translate_errors
from cache.keys import KeyBuilder
from cache.scripts import ScriptRunner
from jobs.config import check_period

log = logging.getLogger(__name__)

CLAIM_MARGIN_S = 60
"""Claims outlive two periods by this much, so a late duplicate still finds the claim."""


class ClaimState(enum.Enum):
    """What ``SlotClaims.claim`` found."""

    CLAIMED = 1
    RESUMED = 2
    TAKEN = 0


def cron_fields(period: int) -> dict[str, Any]:
    """ARQ ``cron()`` keyword arguments (second/minute/hour) for a validated period."""
    check_period(period)
    if period <= 0:
        raise ValueError("a disabled schedule has no cron fields")
    if period < 60:
        return {"second": set(range(0, 60, period)), "minute": None, "hour": None}
    if period < 3600:
        return {"second": 0, "minute": set(range(0, 60, period // 60)), "hour": None}
    return {"second": 0, "minute": 0, "hour": set(range(0, 24, period // 3600))}


def scheduled_ms(job_name: str, job_id: str | None) -> int | None:
    """The scheduled time in an ARQ cron job id ``<name>:<ms>``; None for any other id."""
    if not job_id:
        return None
    match = re.fullmatch(re.escape(job_name) + r":(\d{10,16})", job_id)
    return int(match.group(1)) if match else None


def slot_of(scheduled: int, period: int) -> int:
    """The slot number of a scheduled time (ms) for a period (s)."""
    return scheduled // (period * 1000)


class SlotClaims:
    """Slot claims and the run history of periodic jobs, on the queue store."""

    def __init__(self, scripts: ScriptRunner, keys: KeyBuilder) -> None:
        self.scripts = scripts
        self.keys = keys

    @property
    def client(self) -> Redis:
        return self.scripts.client

    async def claim(self, job_name: str, slot: int, job_id: str, period: int) -> ClaimState:
        """Claim ``slot`` for ``job_id``; see ``ClaimState`` for the outcomes. A claim key that
        holds no claim raises ``CorruptKeyError`` (left as found: the slot is not run)."""
        ttl_ms = (2 * period + CLAIM_MARGIN_S) * 1000
        key = self.keys.cron_slot(job_name, slot)
        result = await self.scripts.run("slot_claim", [key], [job_id, ttl_ms])
        return ClaimState(int(result))

    async def finish(self, job_name: str, slot: int, job_id: str) -> bool:
        """Mark the slot done; False when the claim was no longer ours (``CorruptKeyError``
        when the key holds no claim at all)."""
        key = self.keys.cron_slot(job_name, slot)
        return bool(await self.scripts.run("slot_finish", [key], [job_id]))

    async def owns(self, job_name: str, slot: int, job_id: str) -> bool:
        """True while the slot is claimed by ``job_id`` and not done (its work is still owed)."""
        key = self.keys.cron_slot(job_name, slot)
        with translate_errors(key, operation="GET"):
            value = await cast(Awaitable[bytes | str | None], self.client.get(key))
        return as_text(value) == f"run:{job_id}"

    async def cover(self, job_name: str, slots: Iterable[int], job_id: str) -> list[int]:
        """Mark the owed ones of ``slots`` done by ``job_id``; returns those it closed. A
        claim that is no claim (wrong type, unknown form) is logged and left as found."""
        wanted = list(slots)
        calls = [([self.keys.cron_slot(job_name, s)], [job_id]) for s in wanted]
        replies = await self.scripts.run_many("slot_cover", calls)
        closed = []
        for slot, reply in zip(wanted, replies, strict=True):
            if isinstance(reply, CorruptKeyError):
                log.warning("%s: slot %d not covered: %s", job_name, slot, reply)
            elif int(reply):
                closed.append(slot)
        return closed

    async def record(self, job_name: str, entry: dict[str, Any], keep: int) -> None:
        """Prepend one run to the job's capped history (newest first)."""
        key = self.keys.cron_history(job_name)
        data = json.dumps(entry, separators=(",", ":"), default=str)
        with translate_errors(key, operation="LPUSH"):
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.lpush(key, data)
                pipe.ltrim(key, 0, max(0, keep - 1))
                await pipe.execute()

    async def history(self, job_name: str, limit: int = 100) -> list[dict[str, Any]]:
        """The last ``limit`` runs of a job, newest first."""
        key = self.keys.cron_history(job_name)
        with translate_errors(key, operation="LRANGE"):
            raw = await cast(Awaitable[list[bytes]], self.client.lrange(key, 0, max(0, limit - 1)))
        return [json.loads(item) for item in raw]


def owed_window(upto_slot: int, period: int) -> range:
    """The slots up to ``upto_slot`` whose claims may still exist (they live 2 periods + 60 s)."""
    back = -(-(2 * period + CLAIM_MARGIN_S) // period)
    return range(upto_slot - back, upto_slot + 1)


now_ms = wall_ms
