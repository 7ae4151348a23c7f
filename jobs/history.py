"""The fleet's recent history in the store, bounded: what the dashboard's graphs draw.

Two series of time buckets, hashes on the queue store (which never evicts):

- a minute each (``seen:history:60:<minute>``), kept ``MINUTE_TTL_S`` (3 h): the last hour;
- ten minutes each (``seen:history:600:<slot>``), kept ``SLOT_TTL_S`` (25 h): the last day.

Workers add to both with the heartbeat they already send (``worker.runtime``: the same
pipelined round trip): jobs ended by outcome (``jobs.outcome``) and their run times as counts per
``DURATION_BUCKETS`` bucket plus the sum, in microseconds (``add_activity``). Queue figures are
sampled once a minute, fleet-wide, by whichever dashboard process takes that minute's flag
(``seen:history:sampled:<minute>``, SET NX, ``record_sample``): depth, due, running and
deferred jobs, the oldest waiting job's age, dead letters, workers alive, paused. So every
dashboard process draws the same history, and it survives a dashboard restart. The store
holds at most 180 + 150 small hashes (a few hundred bytes each): bounded whatever the load.

``read_history`` reads one range (``hour``: 60 minute buckets; ``day``: 144 ten-minute
buckets) in one pipelined round trip and turns buckets into points: jobs per minute by outcome,
the duration's p50 and p95 (interpolated within a bucket, as Prometheus'
``histogram_quantile``) and mean, and the queue sample. A bucket nobody wrote is a point of
zeros for counts and None for samples (no dashboard sampled it); a field that is not an
integer (written by hand) is read as 0.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from cache.codec import as_text
from cache.errors import translate_errors
from cache.keys import KeyBuilder
from jobs.outcome import OUTCOMES

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
"""Seconds: from a fast ping to a ten-minute maintenance run (the worker's duration histogram
``seen_job_duration_seconds`` uses the same bounds)."""
MINUTE = 60
SLOT = 600
MINUTE_TTL_S = 3 * 3600
SLOT_TTL_S = 25 * 3600
RANGES = {"hour": (MINUTE, 60), "day": (SLOT, 144)}
"""Range name -> (bucket length in seconds, buckets)."""
SAMPLE_FIELDS = ("depth", "due", "running", "deferred", "oldest_ms", "dead", "workers", "paused")
MAX_SUFFIX = "_max"
"""A ten-minute bucket keeps the largest ``oldest_ms`` of its minutes too (``oldest_ms_max``)."""


@dataclass(frozen=True)
class Activity:
    """Jobs ended and their run times since the last flush (deltas), as a worker adds them."""

    outcomes: Mapping[str, int] = field(default_factory=dict)
    durations: Sequence[int] = ()
    """Counts per ``DURATION_BUCKETS`` bucket, the last one above the largest bound."""
    duration_sum_us: int = 0

    def __bool__(self) -> bool:
        return any(self.outcomes.values()) or any(self.durations)

    def fields(self) -> dict[str, int]:
        out = {k: v for k, v in self.outcomes.items() if v}
        out.update({f"d{i}": n for i, n in enumerate(self.durations) if n})
        if self.duration_sum_us:
            out["dsum_us"] = self.duration_sum_us
        return out


def add_activity(pipe: Pipeline, keys: KeyBuilder, activity: Activity, now_ms: int) -> None:
    """Queue on ``pipe`` the commands that add ``activity`` to the buckets of ``now_ms``."""
    fields = activity.fields()
    if not fields:
        return
    for step, ttl in ((MINUTE, MINUTE_TTL_S), (SLOT, SLOT_TTL_S)):
        key = keys.history_bucket(step, now_ms // (step * 1000))
        for name, value in fields.items():
            pipe.hincrby(key, name, value)
        pipe.expire(key, ttl)


@dataclass(frozen=True)
class QueueSample:
    """The queue as one dashboard saw it at a minute."""

    depth: int
    due: int
    running: int
    deferred: int
    oldest_ms: int
    dead: int
    workers: int
    paused: bool


async def take_minute(client: Redis, keys: KeyBuilder, now_ms: int) -> bool:
    """Whether this process samples the current minute (the first to ask does)."""
    minute = now_ms // 60_000
    key = keys.history_sampled(minute)
    with translate_errors(key, operation="SET NX history sample"):
        return bool(await client.set(key, "1", nx=True, ex=3 * MINUTE))


async def record_sample(client: Redis, keys: KeyBuilder, sample: QueueSample, now_ms: int) -> None:
    """Write the minute's sample into its minute and ten-minute buckets."""
    values = {
        "depth": sample.depth,
        "due": sample.due,
        "running": sample.running,
        "deferred": sample.deferred,
        "oldest_ms": sample.oldest_ms,
        "dead": sample.dead,
        "workers": sample.workers,
        "paused": int(sample.paused),
    }
    minute = keys.history_bucket(MINUTE, now_ms // (MINUTE * 1000))
    slot = keys.history_bucket(SLOT, now_ms // (SLOT * 1000))
    with translate_errors(minute, operation="record history sample"):
        previous = await cast(Awaitable[Any], client.hget(slot, "oldest_ms" + MAX_SUFFIX))
        peak = max(sample.oldest_ms, _number(previous))
        async with client.pipeline(transaction=False) as pipe:
            pipe.hset(minute, mapping=values)
            pipe.expire(minute, MINUTE_TTL_S)
            pipe.hset(slot, mapping={**values, "oldest_ms" + MAX_SUFFIX: peak})
            pipe.expire(slot, SLOT_TTL_S)
            await pipe.execute()


@dataclass(frozen=True)
class Point:
    """One bucket of a range: its start, jobs ended by outcome, run times, the queue sample."""

    at_ms: int
    ended: dict[str, int]
    duration_p50_s: float | None
    duration_p95_s: float | None
    duration_mean_s: float | None
    depth: int | None = None
    due: int | None = None
    running: int | None = None
    deferred: int | None = None
    oldest_s: float | None = None
    dead: int | None = None
    workers: int | None = None
    paused: bool | None = None


@dataclass(frozen=True)
class History:
    range: str
    step_s: int
    points: list[Point]
    """Oldest first; the last is the bucket now being filled."""

    def total(self, outcome: str) -> int:
        return sum(p.ended.get(outcome, 0) for p in self.points)


def _number(raw: object) -> int:
    if isinstance(raw, bytes | str):
        text = as_text(raw)
        if text.lstrip("-").isdigit():
            return int(text)
    return 0


def quantile(counts: Sequence[int], q: float) -> float | None:
    """The ``q`` quantile of a histogram of ``DURATION_BUCKETS`` counts (None when empty),
    interpolated linearly within its bucket; above the largest bound: that bound."""
    total = sum(counts)
    if total <= 0:
        return None
    rank = q * total
    seen = 0
    for index, count in enumerate(counts):
        if count and seen + count >= rank:
            if index >= len(DURATION_BUCKETS):
                return float(DURATION_BUCKETS[-1])
            low = DURATION_BUCKETS[index - 1] if index > 0 else 0.0
            high = DURATION_BUCKETS[index]
            return round(low + (high - low) * (rank - seen) / count, 6)
        seen += count
    return float(DURATION_BUCKETS[-1])


def point_of(at_ms: int, raw: Mapping[object, object], step_s: int) -> Point:
    values = {as_text(k) if isinstance(k, bytes | str) else str(k): v for k, v in raw.items()}
    counts = [_number(values.get(f"d{i}")) for i in range(len(DURATION_BUCKETS) + 1)]
    runs = sum(counts)
    total_us = _number(values.get("dsum_us"))
    sampled = "depth" in values
    oldest = _number(values.get("oldest_ms" + MAX_SUFFIX, values.get("oldest_ms")))

    def sample(name: str) -> int | None:
        return _number(values.get(name)) if sampled else None

    paused = sample("paused")
    return Point(
        at_ms=at_ms,
        ended={o: _number(values.get(o)) for o in OUTCOMES},
        duration_p50_s=quantile(counts, 0.5),
        duration_p95_s=quantile(counts, 0.95),
        duration_mean_s=round(total_us / runs / 1e6, 6) if runs else None,
        depth=sample("depth"),
        due=sample("due"),
        running=sample("running"),
        deferred=sample("deferred"),
        oldest_s=round(oldest / 1000, 3) if sampled else None,
        dead=sample("dead"),
        workers=sample("workers"),
        paused=None if paused is None else bool(paused),
    )


async def read_history(client: Redis, keys: KeyBuilder, range_: str, now_ms: int) -> History:
    """The buckets of ``range_`` (``hour`` or ``day``) up to now, as points (oldest first)."""
    if range_ not in RANGES:
        raise ValueError(f"range must be one of {', '.join(RANGES)}, got {range_!r}")
    step, count = RANGES[range_]
    last = now_ms // (step * 1000)
    indexes = list(range(last - count + 1, last + 1))
    with translate_errors(keys.history_bucket(step, last), operation="read history"):
        async with client.pipeline(transaction=False) as pipe:
            for index in indexes:
                pipe.hgetall(keys.history_bucket(step, index))
            replies = await pipe.execute(raise_on_error=False)
    points = [
        point_of(index * step * 1000, reply if isinstance(reply, dict) else {}, step)
        for index, reply in zip(indexes, replies, strict=True)
    ]
    return History(range_, step, points)
