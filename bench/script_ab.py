"""What a change to our Lua scripts costs: the shipped scripts against those of a git revision.

    .venv/bin/python -m bench.script_ab <revision> [--runs 11] [--only download]

Two figures per workload, the old and the new scripts measured alternately in the same run
(each run of one is followed by a run of the other, so both see the same machine load):

- **server**: the server's own microseconds per ``EVALSHA`` (``INFO commandstats``,
  ``usec_per_call``) while the cache layer runs a workload on a private ``redis-server``
  (commands, Lua and all). Wall time inside the server: on a shared machine it moves with the
  load, so read the median of the per-run ratios and its range.
- **lua**: the scripts' own Lua work per call (parsing, checks, closures, tables), each script
  run 20,000 times by Lua 5.1 (lupa, the interpreter Redis embeds) with ``redis.call``
  answered from canned replies in Lua, timed in process CPU time (preemption does not count).

Not part of ``make bench``: it compares two versions of the code, not ours with a peer.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import lupa.lua51 as lua51
from redis.asyncio import Redis

from cache.config import CacheConfig, CacheSettings
from cache.download import DownloadStatus, ProgressUpdate
from cache.manager import CacheManager
from cache.scripts import Script, load_scripts
from worker.embedded import EmbeddedServer

ROOT = Path(__file__).resolve().parent.parent
Work = Callable[[CacheManager], Awaitable[None]]


def scripts_at(revision: str) -> dict[str, Script]:
    """The scripts of ``cache/scripts`` at a git revision (only those that still exist)."""
    found: dict[str, Script] = {}
    for name in load_scripts():
        done = subprocess.run(
            ["git", "show", f"{revision}:cache/scripts/{name}.lua"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode == 0:
            found[name] = Script.parse(name, done.stdout)
    return found


def update(job: str, seq: int) -> ProgressUpdate:
    return ProgressUpdate(
        job_id=job,
        user_id="u1",
        seq=seq,
        status=DownloadStatus.DOWNLOADING,
        bytes_done=seq * 1000,
        bytes_total=100_000,
        emitted_at_ms=1_700_000_000_000 + seq * 100,
    )


# -- the server figure -------------------------------------------------------------------------
async def _apply_first(m: CacheManager) -> None:
    await m.download.bulk_update_progress([update(f"dl-{i}", 1) for i in range(1000)])


async def _apply_again(m: CacheManager) -> None:
    for seq in range(2, 12):
        await m.download.bulk_update_progress([update(f"dl-{i}", seq) for i in range(1000)])


async def _apply_new(m: CacheManager) -> None:
    for r in range(10):
        await m.download.bulk_update_progress([update(f"n{r}-{i}", 1) for i in range(1000)])


async def _put(m: CacheManager) -> None:
    for seq in range(1, 6):
        await m.download.publish_many([update(f"p-{i}", seq) for i in range(1000)])


async def _drain(m: CacheManager) -> None:
    for shard in range(m.download.layout.shards):
        await m.download.drain(shard, "bench", batch=200, budget=30)


async def _locks(m: CacheManager) -> None:
    for i in range(2000):
        lock = await m.locks.try_acquire(f"n{i % 50}", ttl=30)
        assert lock is not None
        await lock.release()


async def _in_waves(calls: list[Awaitable[object]], width: int = 50) -> None:
    """``width`` calls at a time (the pool's connections are not all the machine's)."""
    for start in range(0, len(calls), width):
        await asyncio.gather(*calls[start : start + width])


async def _gcra(m: CacheManager) -> None:
    await _in_waves([m.ratelimit.check(f"u{i % 100}", "a", 1000, 60) for i in range(5000)])


async def _fixed(m: CacheManager) -> None:
    await _in_waves([m.ratelimit.check_fixed(f"u{i % 100}", "a", 1000, 60) for i in range(5000)])


async def _bump(m: CacheManager) -> None:
    await _in_waves([m.catalog.invalidate_user_catalog(f"u{i % 100}") for i in range(3000)])


SERVER_WORKLOADS: dict[str, tuple[Work | None, Work]] = {
    "download_apply, existing downloads": (_apply_first, _apply_again),
    "download_apply, new downloads": (None, _apply_new),
    "download_pending_put": (None, _put),
    "download_apply, pending mode (drain)": (_put, _drain),
    "lock_acquire + lock_release": (None, _locks),
    "ratelimit_gcra": (None, _gcra),
    "ratelimit_fixed": (None, _fixed),
    "catalog_bump": (None, _bump),
}


async def _usec_per_call(raw: Redis) -> float:
    row = (await raw.info("commandstats")).get("cmdstat_evalsha", {})
    return float(row.get("usec_per_call", 0.0))


async def server_figures(
    sets: dict[str, dict[str, Script]], runs: int, only: str
) -> dict[str, dict[str, list[float]]]:
    figures: dict[str, dict[str, list[float]]] = {}
    with EmbeddedServer("redis-server") as server:
        config = CacheConfig(cache=CacheSettings.model_validate({"addr": server.url}))
        raw = Redis.from_url(server.url)
        try:
            async with await CacheManager.connect(config) as manager:
                for name, (setup, work) in SERVER_WORKLOADS.items():
                    if only not in name:
                        continue
                    figures[name] = {label: [] for label in sets}
                    for _ in range(runs):
                        for label, scripts in sets.items():
                            manager.scripts.scripts = scripts
                            await raw.flushdb()
                            if setup is not None:
                                await setup(manager)
                            await raw.config_resetstat()
                            await work(manager)
                            figures[name][label].append(await _usec_per_call(raw))
        finally:
            await raw.aclose()
    return figures


# -- the Lua figure ----------------------------------------------------------------------------
_STUB = r"""
local replies = ...
local function answer(command, key, ...)
  local reply = replies[command]
  if type(reply) == 'function' then return reply(key, ...) end
  return reply
end
redis = {call = answer, pcall = answer, error_reply = function(text) return {err = text} end}
"""
_PROGRESS = "{'5', 'downloading', 'u1', '5000', '1700000000500', '1000', '3'}"
_APPLY = f"""
return {{
  HMGET = function(key)
    if string.find(key, 'pending') then
      return {{'6', 'downloading', '6000', '100000', '1700000000600', '', 'u1'}}
    end
    return {_PROGRESS}
  end,
  ZSCORE = '1796673972988', HINCRBY = 8, XADD = '1796673972988-0', ZADD = 0,
  ZREMRANGEBYSCORE = 0, PEXPIRE = 1, HSET = 0, ZREM = 1, DEL = 1,
}}
"""
_PUT = """
return {
  HMGET = function(key)
    if string.find(key, 'progress') then return {'5', 'downloading', 'u1'} end
    if string.find(key, 'drain') then return {'progress-drain:9:ab', '1796673972980'} end
    return {'6', 'u1'}
  end,
  HINCRBY = 8, ZADD = 0, PEXPIRE = 1, HSET = 0,
}
"""
_NOW = "1796673972990"
_UPDATE = ["dl-1", "u1", "7", "downloading", "7000", "100000", "1700000000700", ""]
_HEAD = ["1796673972990", "30000", "3600000", "5000", "10000", "dl-1", "u1"]
LUA_CASES: dict[str, tuple[str, str, list[str], list[str]]] = {
    "download_apply, direct (existing download)": (
        "download_apply",
        _APPLY,
        ["k1", "k2", "k3", "k4", "k5", "k6", "k7"],
        ["direct", *_HEAD, "7", "downloading", "7000", "100000", "1700000000700", ""],
    ),
    "download_apply, pending mode": (
        "download_apply",
        _APPLY,
        ["k1", "k2", "k3", "k4", "k5", "pending:dl-1", "k7"],
        ["pending", *_HEAD],
    ),
    "download_pending_put, coalesced": (
        "download_pending_put",
        _PUT,
        ["pending:dl-1", "k2", "drain", "progress:dl-1", "k5"],
        [*_UPDATE, "progress-drain:9:cd", _NOW, "15000", "600000"],
    ),
}


def lua_us_per_call(script: Script, replies: str, keys: list[str], argv: list[str]) -> float:
    lua = lua51.LuaRuntime()
    lua.execute(_STUB, lua.execute(replies))
    lua_globals = lua.globals()
    lua_globals.KEYS = lua.table(*keys)
    lua_globals.ARGV = lua.table(*argv)
    body = lua.eval("function(source) return loadstring(source) end")(script.source)
    loop = lua.eval("function(f, n) for _ = 1, n do f() end end")
    body()  # a first call, not timed
    start = time.process_time()
    loop(body, 20_000)
    return (time.process_time() - start) / 20_000 * 1e6


def lua_figures(
    sets: dict[str, dict[str, Script]], runs: int, only: str
) -> dict[str, dict[str, list[float]]]:
    figures: dict[str, dict[str, list[float]]] = {}
    for name, (script, replies, keys, argv) in LUA_CASES.items():
        if only not in name:
            continue
        figures[name] = {label: [] for label in sets}
        for _ in range(runs):
            for label, scripts in sets.items():
                cost = lua_us_per_call(scripts[script], replies, keys, argv)
                figures[name][label].append(cost)
    return figures


def report(title: str, figures: dict[str, dict[str, list[float]]]) -> None:
    print(f"\n{title}: median (range) microseconds per call, old -> new, new/old per run")
    for name, by in figures.items():
        old, new = by["old"], by["new"]
        ratios = [n / o for o, n in zip(old, new, strict=True) if o > 0]
        print(
            f"  {name:42s} {statistics.median(old):7.2f} ({min(old):.2f}-{max(old):.2f})"
            f" -> {statistics.median(new):7.2f} ({min(new):.2f}-{max(new):.2f})"
            f"   x{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("revision", help="git revision of the old scripts, e.g. HEAD~3")
    parser.add_argument("--runs", type=int, default=11, help="alternating runs (default 11)")
    parser.add_argument("--only", default="", help="only workloads whose name contains this")
    args = parser.parse_args(argv)
    sets = {"old": scripts_at(args.revision), "new": load_scripts()}
    report("Lua work (Lua 5.1, CPU time)", lua_figures(sets, args.runs, args.only))
    server = asyncio.run(server_figures(sets, args.runs, args.only))
    report("server, usec_per_call of EVALSHA (redis-server)", server)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
