"""The limiter's arithmetic, without a server.

The parameter checks are plain Python. The Lua scripts' arithmetic is run in Lua 5.1 (Redis)
and Lua 5.4 (Dragonfly) through lupa, over a tiny in-memory table standing in for the few
commands they use, and compared with a reference model: the same decisions, only integers
in and out (no Lua float can reach the store or the caller), the contract over any sequence,
and a ``retry_after`` that is exact to the microsecond. The real-server behaviour is covered
by tests/integration/test_ratelimit.py.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lupa import lua51, lua54

from cache.coordination._ratelimit import RateLimitResult, fixed_params, gcra_params, window_us

SCRIPTS = Path(__file__).resolve().parents[2] / "cache" / "scripts"
EPOCH_US = 1_700_000_000_000_000


# -- parameters ---------------------------------------------------------------------------
def test_interval_is_rounded_up_so_the_rate_never_exceeds_the_limit() -> None:
    assert gcra_params(7, 60) == (8_571_429, 7, 1)
    interval, _, _ = gcra_params(7, 60)
    assert interval * 7 >= 60_000_000
    assert gcra_params(10, timedelta(seconds=1), burst=3, cost=2) == (100_000, 3, 2)
    assert gcra_params(1, 0.000_001) == (1, 1, 1)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0, 60), "limit"),
        ((-3, 60), "limit"),
        ((1.5, 60), "limit"),
        ((True, 60), "limit"),
        ((5, 0), "window"),
        ((5, -0.1), "window"),
        ((5, float("nan")), "window"),
        ((5, "60"), "window"),
        ((5, 400 * 24 * 3600), "window"),
        ((5, timedelta(0)), "window"),
        ((2_000_001, 2), "microsecond"),
    ],
)
def test_bad_parameters(args: tuple[Any, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        gcra_params(*args)


def test_burst_and_cost_bounds() -> None:
    with pytest.raises(ValueError, match="burst"):
        gcra_params(5, 60, burst=6)
    with pytest.raises(ValueError, match="cost"):
        gcra_params(5, 60, burst=2, cost=3)
    with pytest.raises(ValueError, match="cost"):
        fixed_params(5, 60, cost=6)
    assert fixed_params(5, 0.0015) == (5, 2, 1)  # window rounded up to whole ms
    assert window_us(timedelta(milliseconds=1)) == 1000


def test_headers() -> None:
    denied = RateLimitResult(False, 10, 0, retry_after=0.2, reset_after=5.5)
    assert denied.headers() == {
        "RateLimit-Limit": "10",
        "RateLimit-Remaining": "0",
        "RateLimit-Reset": "6",
        "Retry-After": "1",
    }
    assert not denied


# -- the Lua scripts -------------------------------------------------------------------
class FakeStore:
    """Just enough of GET/SET PX/PTTL/INCRBY/TIME for the two limiter scripts."""

    def __init__(self) -> None:
        self.now_us = EPOCH_US
        self.data: dict[str, tuple[str, int | None]] = {}  # value, expiry in ms

    def _live(self, key: str) -> tuple[str, int | None] | None:
        entry = self.data.get(key)
        if entry is not None and entry[1] is not None and self.now_us // 1000 > entry[1]:
            del self.data[key]
            return None
        return entry

    def call(self, command: str, *args: Any) -> Any:
        for arg in args:  # every value a script sends must be a string or an integer
            assert isinstance(arg, str | int) and not isinstance(arg, bool), (command, args)
        if command == "TIME":
            return [str(self.now_us // 1_000_000), str(self.now_us % 1_000_000)]
        key = args[0]
        entry = self._live(key)
        if command == "GET":
            return False if entry is None else entry[0]
        if command == "PTTL":
            if entry is None:
                return -2
            return -1 if entry[1] is None else entry[1] - self.now_us // 1000
        if command == "SET":
            assert args[2] == "PX"
            self.data[key] = (str(args[1]), self.now_us // 1000 + int(args[3]))
            return {"ok": "OK"}
        if command == "INCRBY":
            assert entry is not None
            value = int(entry[0]) + int(args[1])
            self.data[key] = (str(value), entry[1])
            return value
        raise AssertionError(f"unexpected command {command}")


class Script:
    """One script under one Lua version, wired to a FakeStore."""

    def __init__(self, name: str, lua: Any) -> None:
        self.runtime = lua.LuaRuntime(unpack_returned_tuples=True)
        self.store = FakeStore()
        store = self.store

        def call(*args: Any) -> Any:
            result = store.call(*args)
            return self.runtime.table(*result) if isinstance(result, list) else result

        self.runtime.globals().redis = self.runtime.table(call=call, pcall=call)
        self.source = (SCRIPTS / f"{name}.lua").read_text()

    def run(self, key: str, *args: int) -> list[int]:
        globals_ = self.runtime.globals()
        globals_.KEYS = self.runtime.table(key)
        globals_.ARGV = self.runtime.table(*(str(a) for a in args))
        values = list(self.runtime.execute(self.source).values())
        assert all(type(v) is int for v in values), values  # no Lua float escapes
        return values


def gcra_reference(tat: int, now: int, interval: int, burst: int, cost: int) -> tuple[bool, int]:
    """The textbook GCRA decision and the new TAT."""
    tat = max(tat, now)
    new_tat = tat + interval * cost
    if new_tat - interval * burst <= now:
        return True, new_tat
    return False, tat


LUAS = pytest.mark.parametrize("lua", [lua51, lua54], ids=["lua5.1", "lua5.4"])
steps = st.lists(st.tuples(st.integers(0, 400_000), st.integers(1, 3)), min_size=1, max_size=60)


@LUAS
@settings(max_examples=60, deadline=None)
@given(
    interval=st.integers(1, 200_000),
    burst=st.integers(3, 12),
    calls=steps,
)
def test_gcra_script_matches_the_reference_and_keeps_the_contract(
    lua: Any, interval: int, burst: int, calls: list[tuple[int, int]]
) -> None:
    script = Script("ratelimit_gcra", lua)
    tat = 0
    allowed_cost = 0
    first = script.store.now_us
    for advance, cost in calls:
        script.store.now_us += advance
        now = script.store.now_us
        allowed, remaining, retry_us, reset_us = script.run("k", interval, burst, cost)
        expect, tat = gcra_reference(tat, now, interval, burst, cost)
        assert allowed == int(expect)
        assert 0 <= remaining <= burst
        assert 0 <= reset_us <= interval * burst
        if allowed:
            allowed_cost += cost
            assert retry_us == 0
        else:
            assert retry_us > 0
        assert allowed_cost <= burst + (now - first) // interval


@LUAS
@settings(max_examples=60, deadline=None)
@given(interval=st.integers(1, 200_000), burst=st.integers(1, 12), calls=steps)
def test_gcra_retry_after_is_exact(
    lua: Any, interval: int, burst: int, calls: list[tuple[int, int]]
) -> None:
    script = Script("ratelimit_gcra", lua)
    for advance, cost in calls:
        cost = min(cost, burst)
        script.store.now_us += advance
        allowed, _, retry_us, _ = script.run("k", interval, burst, cost)
        if allowed:
            continue
        script.store.now_us += retry_us - 1
        assert script.run("k", interval, burst, cost)[0] == 0  # one microsecond early
        script.store.now_us += 1
        assert script.run("k", interval, burst, cost)[0] == 1  # exactly on time


@LUAS
@settings(max_examples=60, deadline=None)
@given(limit=st.integers(1, 10), window_ms=st.integers(1, 500), calls=steps)
def test_fixed_window_script_keeps_the_contract(
    lua: Any, limit: int, window_ms: int, calls: list[tuple[int, int]]
) -> None:
    script = Script("ratelimit_fixed", lua)
    first = script.store.now_us
    used = 0
    for advance, cost in calls:
        cost = min(cost, limit)
        script.store.now_us += advance
        allowed, remaining, retry_us, reset_us = script.run("k", limit, window_ms, cost)
        assert 0 <= remaining <= limit
        if allowed:
            used += cost
            assert retry_us == 0
        else:
            assert retry_us == reset_us > 0
            script.store.now_us += retry_us
            assert script.run("k", limit, window_ms, cost)[0] == 1  # honest retry_after
            used += cost
        windows = (script.store.now_us - first) // (window_ms * 1000) + 1
        assert used <= limit * windows
