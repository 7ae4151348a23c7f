"""The catalog scripts under Lua 5.4 (Dragonfly's Lua; Redis runs 5.1, tested for real in
tests/integration). Dragonfly returns a Lua float as a string, so every number a script
returns or writes must be a Lua integer: lupa hands Lua integers to Python as ``int`` and
floats as ``float``, which makes the difference visible here. ``redis.call`` is a small
dict-backed stand-in: this checks Lua number semantics, not store behaviour."""

from __future__ import annotations

from typing import Any

import pytest

from cache.scripts import load_scripts

lua54 = pytest.importorskip("lupa.lua54")


class Store:
    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.ttl: dict[str, int] = {}

    def call(self, command: str, key: str, *args: Any) -> Any:
        command = command.upper()
        if command == "GET":
            return self.data.get(key, False)  # a missing key is Lua false, as in Redis
        if command == "SET":
            self.data[key] = args[0]
            if len(args) >= 3 and str(args[1]).upper() == "PX":
                self.ttl[key] = int(args[2])
            return "OK"
        if command == "DEL":
            return int(self.data.pop(key, None) is not None)
        if command == "PEXPIRE":
            if key not in self.data:
                return 0
            self.ttl[key] = int(args[0])
            return 1
        raise AssertionError(f"script used an unexpected command {command}")


def run(name: str, store: Store, keys: list[str], argv: list[Any]) -> Any:
    runtime = lua54.LuaRuntime()
    lua_globals = runtime.globals()
    redis = runtime.table()
    redis.call = lambda *a: store.call(*a)
    redis.pcall = redis.call  # the store stand-in holds strings only: no call fails
    lua_globals.redis = redis
    lua_globals.KEYS = runtime.table(*keys)
    lua_globals.ARGV = runtime.table(*[str(a) for a in argv])  # ARGV arrive as strings
    source = load_scripts()[name].source
    return runtime.execute(source)


def test_bump_returns_and_stores_integers() -> None:
    store = Store()
    clock_us = 1_795_987_082_762_731
    first = run("catalog_bump", store, ["g"], [clock_us, 7_200_000])
    assert first == clock_us and type(first) is int
    assert store.data["g"] == str(clock_us) and store.ttl["g"] == 7_200_000
    second = run("catalog_bump", store, ["g"], [clock_us - 5, 7_200_000])  # clock went back
    assert second == clock_us + 1 and type(second) is int
    assert store.data["g"] == str(clock_us + 1)


def test_bump_from_a_counter_ahead_of_the_clock() -> None:
    store = Store()
    store.data["g"] = str(2**52)
    assert run("catalog_bump", store, ["g"], [1, 1000]) == 2**52 + 1
    assert store.data["g"] == str(2**52 + 1)


def test_fill_lock_release_and_renew_compare_the_token() -> None:
    store = Store()
    store.data["l"] = "mine"
    assert run("lock_extend", store, ["l"], ["theirs", 5000]) == 0
    assert run("lock_extend", store, ["l"], ["mine", 5000]) == 1
    assert store.ttl["l"] == 5000
    assert run("lock_release", store, ["l"], ["theirs"]) == 0
    assert "l" in store.data
    assert run("lock_release", store, ["l"], ["mine"]) == 1
    assert "l" not in store.data
    assert run("lock_release", store, ["l"], ["mine"]) == 0
