"""The progress benchmark's server-side figures: redis-benchmark's EVALSHA of the apply script
(the server's own limit) and the cleanup of 100k stale downloads (the longest command)."""

from __future__ import annotations

import asyncio
import subprocess
import time

from redis.asyncio import Redis

from bench.common import BenchEnv
from cache.download import DownloadStatus, ProgressUpdate, member, now_ms
from cache.manager import CacheManager


async def redis_benchmark_evalsha(env: BenchEnv, manager: CacheManager) -> float | None:
    """EVALSHA of download_apply.lua from redis-benchmark: the server's own limit."""
    if not env.redis_benchmark:
        return None
    await manager.scripts.load_all()
    script = manager.scripts.get("download_apply")
    update = ProgressUpdate(
        job_id="dl-__rand_int__",
        user_id="u1",
        seq=1,
        status=DownloadStatus.DOWNLOADING,
        bytes_done=1000,
        bytes_total=100_000,
    )  # redis-benchmark replaces __rand_int__ in keys and arguments alike
    keys, args = manager.download.apply_call(update, now_ms())
    port = env.addr.rsplit(":", 1)[1]
    total = 100_000 if env.quick else 400_000
    cmd = [env.redis_benchmark, "-h", "127.0.0.1", "-p", port, "-n", str(total), "-c", "50"]
    cmd += ["-P", "16", "-r", "100000000", "--csv", "EVALSHA", script.sha, str(len(keys))]
    cmd += [*keys, *(str(a) for a in args)]
    done = await asyncio.to_thread(subprocess.run, cmd, capture_output=True, text=True, timeout=120)
    lines = [ln for ln in done.stdout.strip().splitlines() if ln and not ln.startswith('"test"')]
    if done.returncode != 0 or not lines:
        return None
    return float(lines[-1].split(",")[1].strip('"'))


async def cleanup_figures(raw: Redis, manager: CacheManager) -> dict[str, float]:
    """cleanup_stale of 100k idle downloads: time, and the longest single command (slow log)
    against a naive ZREMRANGEBYSCORE of the same 100k entries in one command."""
    count, layout, old = 100_000, manager.download.layout, now_ms() - 7_200_000
    by_shard: dict[int, dict[str, int]] = {}
    for i in range(count):
        by_shard.setdefault(layout.shard(f"old-{i}"), {})[member(f"old-{i}", "u1")] = old
    async with raw.pipeline(transaction=False) as pipe:
        for shard, members in by_shard.items():
            pipe.zadd(manager.keys.download_active(shard), members)
        pipe.zadd("naive:active", {f"old-{i}": old for i in range(count)})
        await pipe.execute()
    await manager.scripts.load_all()
    await raw.config_set("slowlog-log-slower-than", 0)
    await raw.config_set("slowlog-max-len", 1024)
    await raw.slowlog_reset()
    started = time.perf_counter()
    removed = await manager.download.cleanup_stale(3600)
    seconds = time.perf_counter() - started
    ours_worst = max((e["duration"] for e in await raw.slowlog_get(1024)), default=0)
    await raw.slowlog_reset()
    await raw.zremrangebyscore("naive:active", "-inf", old)
    naive = max((e["duration"] for e in await raw.slowlog_get(8)), default=0)
    await raw.config_set("slowlog-log-slower-than", 10_000)
    await raw.config_set("slowlog-max-len", 128)
    await raw.flushdb()
    return {
        "removed": removed,
        "seconds": round(seconds, 2),
        "worst_cmd_us": ours_worst,
        "naive_cmd_us": naive,
    }
