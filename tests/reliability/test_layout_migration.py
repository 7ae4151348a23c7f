"""Moving a running deployment between queue layouts loses nothing and runs nothing twice.

The procedure of docs/operations.md ("Moving a queue between layouts"), with real worker
processes: jobs wait on the old layout (half due now, half deferred 3-6 s) while the old
workers drain them; workers of the new layout start beside them; ``seen-worker migrate-queue
--until-empty`` moves what no worker holds; the old workers stop; a last pass moves what they
handed back and the results they wrote. Every job runs through
``tests.support.counting_jobs.count_run``, which counts its runs per id: afterwards every id ran
exactly once, has exactly one result (on the new layout, returning 1), the jobs the command
moved are exactly those the new workers ran, no key of the old layout is left, and the new
queues are empty. Both directions: 10,000 jobs from ARQ's layout to the sharded one, 2,000 back.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from cache.clock import wall_ms
from jobs.client import enqueue_jobs
from jobs.queue_move import QueueMover
from jobs.wire.layout import QueueLayout
from tests.conftest import COMPAT_LUA54, TestServer
from tests.support.counting_jobs import RUNS, RUNS_BY_LAYOUT
from tests.support.processes import Fleet, run_cli
from tests.support.waiting import wait_until

NOT_ATOMIC = (
    "the Lua 5.4 lane runs scripts in the test process command by command: atomic within this "
    "process, not against the worker processes' claims, which this test races on purpose; the "
    "mover's script runs under Lua 5.4 in tests/integration/test_queue_move.py and "
    "tests/compat/test_move_script.py, and this test runs on the server's own Lua elsewhere"
)
pytestmark = pytest.mark.skipif(COMPAT_LUA54, reason=NOT_ATOMIC)

NAME = "arq:queue"
SHARDS = 4
CHUNK = 500
DEFERRED_MS = (3000, 6000)
"""Half the jobs are due 3-6 s after the old workers started running the other half."""
JOB_PAUSE_S = 0.003
"""Each run holds its job this long: the old workers hold jobs while the mover passes by."""


def fleet_sections(layout: QueueLayout, max_jobs: int) -> dict[str, dict[str, Any]]:
    queue: dict[str, Any] = {"name": NAME, "layout": layout.kind}
    if layout.kind == "sharded":
        queue["shards"] = layout.count
    return {
        "queue": queue,
        "worker": {"job_modules": ["tests.support.counting_jobs"], "max_jobs": max_jobs},
        "http": {"enabled": False},
    }


async def enqueue(
    client: Redis, layout: QueueLayout, ids: list[str], defer_ms: tuple[int, int] | None = None
) -> None:
    """Jobs ``ids``: due now, or deferred, spread over ``defer_ms`` (from, to) from now."""
    now = wall_ms()
    for first in range(0, len(ids), CHUNK):
        chunk = ids[first : first + CHUNK]
        due = None
        if defer_ms is not None:
            low, high = defer_ms
            due = now + low + (high - low) * first // len(ids)
        done = await enqueue_jobs(
            client, [("count_run", (JOB_PAUSE_S,), j) for j in chunk], layout=layout,
            defer_until_ms=due,
        )  # fmt: skip
        assert all(done)


def migrate(settings_file: Path, *args: str, timeout: float) -> tuple[int, list[dict[str, Any]]]:
    """``seen-worker migrate-queue --json ARGS`` with the new workers' settings."""
    env = {**os.environ, "SEEN_SETTINGS_FILE": str(settings_file)}
    env.pop("SEEN_CACHE_ADDR", None)
    done = run_cli("migrate-queue", "--json", *args, env=env, timeout=timeout)
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines and "done" in lines[-1], done.stdout + done.stderr
    return done.returncode, lines


async def keys_matching(client: Redis, pattern: str) -> list[str]:
    return [k.decode() async for k in client.scan_iter(match=pattern, count=1000)]


async def layout_keys(client: Redis, layout: QueueLayout) -> list[str]:
    """Every key of ``layout``'s queue left in the store (SCAN)."""
    if layout.kind == "arq":
        return await keys_matching(client, "arq:*")  # arq:queue, arq:job:*, ..., arq:abort
    return await keys_matching(client, "{" + NAME + ":*}:*")


def kind_of(key: str) -> str:
    """``result`` of ``arq:result:<id>`` and of ``{<name>:<i>}:result:<id>``."""
    rest = key.partition("}:")[2] if key.startswith("{") else key.removeprefix("arq:")
    return rest.partition(":")[0]


async def run_migration(
    tmp_path: Path, server: TestServer, old: QueueLayout, new: QueueLayout, count: int
) -> None:
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    client = Redis.from_url(server.url)
    await client.flushdb()
    try:
        ids = [f"m{i:05d}" for i in range(count)]
        await enqueue(client, old, ids[: count // 2])
        with (
            Fleet(tmp_path / "old", server.addr, **fleet_sections(old, 20)) as old_fleet,
            Fleet(tmp_path / "new", server.addr, **fleet_sections(new, 50)) as new_fleet,
        ):
            old_fleet.start(1)

            async def old_workers_run() -> bool:
                return int(await client.hlen(RUNS)) >= 50

            await wait_until(old_workers_run, 60, "the old workers run jobs", interval=0.02)
            await enqueue(client, old, ids[count // 2 :], DEFERRED_MS)
            new_fleet.start(2)
            started = time.monotonic()
            reports = await QueueMover(client, old, new).until_empty(60, pause_s=0.2)
            took = time.monotonic() - started
            assert reports[-1].empty, reports[-1].as_dict()
            assert old_fleet.stop_all() == [0], old_fleet.logs()
            code, last = await asyncio.to_thread(
                migrate,
                new_fleet.settings_file,
                "--to",
                new.kind,
                "--shards",
                str(SHARDS),
                timeout=60,
            )
            assert code == 0, last
            moved = sum(r.moved for r in reports) + last[-1]["moved"]
            assert moved > 0, [r.as_dict() for r in reports]

            async def all_ran() -> bool:
                if int(await client.hlen(RUNS)) < count:
                    return False
                queued = [await client.zcard(s.queue) for s in new.shards]
                return not any(queued)

            await wait_until(all_ran, 180, f"{count} jobs ran", interval=0.2)
            assert new_fleet.stop_all() == [0, 0], new_fleet.logs()
        print(
            f"\n{old.kind} -> {new.kind}: {count} jobs, {len(reports)} pass(es) in {took:.1f}s, "
            f"moved {moved}, held per pass {[r.held.count for r in reports]}, last pass {last}"
        )

        runs = {k.decode(): int(v) for k, v in (await client.hgetall(RUNS)).items()}
        assert len(runs) == count and set(runs) == set(ids)
        twice = {job_id: n for job_id, n in runs.items() if n != 1}
        assert not twice, f"{len(twice)} job(s) ran more than once: {list(twice.items())[:10]}"
        by_layout = {k.decode(): int(v) for k, v in (await client.hgetall(RUNS_BY_LAYOUT)).items()}
        assert by_layout.get(new.kind, 0) == moved, (by_layout, moved)
        assert by_layout.get(old.kind, 0) == count - moved, (by_layout, moved)

        results = []
        for first in range(0, count, CHUNK):
            chunk = ids[first : first + CHUNK]
            results += await client.mget([new.for_job(j).result(j) for j in chunk])
        missing = [j for j, r in zip(ids, results, strict=True) if r is None]
        assert not missing, f"{len(missing)} job(s) without a result: {missing[:10]}"
        records = [json.loads(r) for r in results]
        assert all(r["s"] is True and r["r"] == 1 for r in records)
        assert [r["id"] for r in records] == ids
        assert await layout_keys(client, old) == []
        left = await layout_keys(client, new)
        assert {kind_of(key) for key in left} == {"result"}, left[:10]
        assert len(left) == count  # one result per job, nothing else
    finally:
        await client.aclose()


@pytest.mark.timeout(300)
async def test_ten_thousand_jobs_move_from_arq_to_sharded_while_workers_run(
    tmp_path: Path, server: TestServer
) -> None:
    await run_migration(
        tmp_path, server, QueueLayout.arq(NAME), QueueLayout.sharded(NAME, SHARDS), 10_000
    )


@pytest.mark.timeout(200)
async def test_two_thousand_jobs_move_back_from_sharded_to_arq_while_workers_run(
    tmp_path: Path, server: TestServer
) -> None:
    await run_migration(
        tmp_path, server, QueueLayout.sharded(NAME, SHARDS), QueueLayout.arq(NAME), 2_000
    )
