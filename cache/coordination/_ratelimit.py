"""Rate limiting per (user, action): GCRA by default, a fixed window on request.

**GCRA** (generic cell rate algorithm, as redis-cell's ``CL.THROTTLE``): ``limit`` requests per
``window`` means one request every ``T = window / limit``; after idling a caller may spend
``burst`` (default ``limit``) at once. From an idle state, over any span of ``D`` seconds at most
``burst + floor(D / T)`` calls pass. The state is one integer per key (the theoretical arrival
time, microseconds), updated by one Lua script with the server's clock, so API servers with
skewed clocks agree; the key lives at most one window (``burst * T``, plus 2 ms).

**Fixed window** (``check_fixed``): at most ``limit`` per window starting at the first request;
simple, but allows ``2 * limit`` around a window boundary and then locks callers out until the
window ends.

The compatibility call ``rate_limit_check(user_id, action, limit, window) -> bool`` uses GCRA with
``burst = limit``: the same ``limit`` calls at once as a fixed-window counter, but refilled smoothly
instead of all at the boundary, with an honest ``retry_after`` (waiting it makes the next call
pass) and no thundering herd when a window rolls over.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

from cache.errors import InvalidArgumentError
from cache.keys import KeyBuilder
from cache.numbers import count_arg, seconds_arg
from cache.scripts import ScriptRunner
from cache.service import CacheService

Window = int | float | timedelta

MAX_WINDOW_SECONDS = 366 * 24 * 3600
"""Longest window accepted (keeps every microsecond figure far below 2**53)."""
MAX_LIMIT = 2**31 - 1
"""Largest limit, burst or cost (a Lua integer in every server, far below 2**53)."""
LIMITERS = ("gcra", "fixed")
"""The algorithms, the only ``limiter`` a decision is counted under (never a user or action)."""
DECISIONS = ("allowed", "limited")


@dataclass(frozen=True)
class RateLimitResult:
    """Outcome of one check. Durations are in seconds."""

    allowed: bool
    limit: int
    remaining: int
    retry_after: float
    """0.0 when allowed; otherwise how long until this same call would pass."""
    reset_after: float
    """How long until the caller's full allowance is back."""

    def __bool__(self) -> bool:
        return self.allowed

    def headers(self) -> dict[str, str]:
        """HTTP headers for the API servers (``RateLimit-*`` draft + ``Retry-After``)."""
        out = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(math.ceil(self.reset_after)),
        }
        if not self.allowed:
            out["Retry-After"] = str(max(1, math.ceil(self.retry_after)))
        return out


def window_us(window: Window) -> int:
    """A window in whole microseconds; ``InvalidArgumentError`` (a ``ValueError``) unless
    0 < window <= 366 days and finite."""
    seconds = seconds_arg(window, "window", maximum=MAX_WINDOW_SECONDS)
    return max(1, round(seconds * 1_000_000))


def _positive_int(value: object, what: str) -> int:
    return count_arg(value, what, maximum=MAX_LIMIT)


def gcra_params(
    limit: int, window: Window, burst: int | None = None, cost: int = 1
) -> tuple[int, int, int]:
    """``(interval_us, burst, cost)`` for the GCRA script, validated.

    The interval is rounded *up*, so the real rate is never above ``limit / window``.
    """
    limit = _positive_int(limit, "limit")
    span = window_us(window)
    burst = limit if burst is None else _positive_int(burst, "burst")
    cost = _positive_int(cost, "cost")
    if limit > span:
        raise InvalidArgumentError(
            f"limit {limit} per {span} us is more than one request per microsecond"
        )
    if burst > limit:
        raise InvalidArgumentError(f"burst ({burst}) must not exceed limit ({limit})")
    if cost > burst:
        raise InvalidArgumentError(
            f"cost ({cost}) exceeds burst ({burst}): such a call could never pass"
        )
    return -(-span // limit), burst, cost


def fixed_params(limit: int, window: Window, cost: int = 1) -> tuple[int, int, int]:
    """``(limit, window_ms, cost)`` for the fixed-window script (window rounded up to ms)."""
    limit = _positive_int(limit, "limit")
    span_ms = -(-window_us(window) // 1000)
    cost = _positive_int(cost, "cost")
    if cost > limit:
        raise InvalidArgumentError(
            f"cost ({cost}) exceeds limit ({limit}): such a call could never pass"
        )
    return limit, span_ms, cost


def _result(raw: list[int], limit: int) -> RateLimitResult:
    allowed, remaining, retry_us, reset_us = (int(x) for x in raw)
    return RateLimitResult(
        allowed=allowed == 1,
        limit=limit,
        remaining=remaining,
        retry_after=retry_us / 1_000_000,
        reset_after=reset_us / 1_000_000,
    )


class RateLimiter:
    """Per-user, per-action limits (``manager.ratelimit``). Needs a store without eviction."""

    def __init__(self, scripts: ScriptRunner, service: CacheService, keys: KeyBuilder) -> None:
        self.scripts = scripts
        self.service = service
        self.keys = keys
        self.decisions: dict[tuple[str, str], int] = {
            (limiter, decision): 0 for limiter in LIMITERS for decision in DECISIONS
        }
        """Decisions in this process by (limiter, decision), read by the worker's metrics."""

    def _count(self, limiter: str, result: RateLimitResult) -> RateLimitResult:
        self.decisions[limiter, "allowed" if result.allowed else "limited"] += 1
        return result

    async def check(
        self,
        user_id: str,
        action: str,
        limit: int,
        window: Window,
        *,
        burst: int | None = None,
        cost: int = 1,
    ) -> RateLimitResult:
        """GCRA: ``limit`` per ``window`` on average, ``burst`` (default ``limit``) at once."""
        interval, burst, cost = gcra_params(limit, window, burst, cost)
        key = self.keys.rate_limit(user_id, action)
        raw = await self.scripts.run("ratelimit_gcra", [key], [interval, burst, cost])
        return self._count("gcra", _result(raw, limit))

    async def check_fixed(
        self, user_id: str, action: str, limit: int, window: Window, *, cost: int = 1
    ) -> RateLimitResult:
        """Fixed window: at most ``limit`` per ``window`` counted from the first request."""
        limit, span_ms, cost = fixed_params(limit, window, cost)
        key = self.keys.rate_limit_fixed(user_id, action)
        raw = await self.scripts.run("ratelimit_fixed", [key], [limit, span_ms, cost])
        return self._count("fixed", _result(raw, limit))

    async def allow(self, user_id: str, action: str, limit: int, window: Window) -> bool:
        """The compatibility call ``rate_limit_check``: GCRA with ``burst = limit``."""
        return (await self.check(user_id, action, limit, window)).allowed

    async def reset(self, user_id: str, action: str) -> int:
        """Forget a caller's state for ``action`` (both modes); returns keys removed."""
        return await self.service.delete(
            self.keys.rate_limit(user_id, action), self.keys.rate_limit_fixed(user_id, action)
        )

    async def stats(self) -> dict[str, int]:
        """Process-local counters (``manager.stats().extra['ratelimit.*']``): allowed and
        denied calls, both algorithms together."""
        allowed = sum(n for (_, d), n in self.decisions.items() if d == "allowed")
        return {"allowed": allowed, "denied": sum(self.decisions.values()) - allowed}
