"""The JSON job wire format (docs/wire-format.md) with raw commands and a real ARQ worker."""

from __future__ import annotations

import json
import re
import shlex
import time
from typing import Any

from arq.connections import RedisSettings, create_pool
from arq.jobs import deserialize_job_raw
from redis.asyncio import Redis

from cache.manager import CacheManager
from jobs.client import enqueue_update, job_record
from jobs.deadletter import read_dead_letters
from jobs.serializer import deserialize, serialize
from jobs.wire.layout import QueueLayout
from tests.conftest import ROOT, TestServer
from tests.support.processes import run_burst_worker, worker_settings
from tests.support.updates import upd
from worker.settings import Settings

DOC = ROOT / "docs" / "wire-format.md"


def ARQ_LAYOUT(url: str) -> Settings:
    """Sections 3 to 6 describe ARQ's layout: the worker of these tests runs it."""
    return worker_settings(url, queue={"layout": "arq"})


def doc_commands() -> list[list[str]]:
    """The ```redis block of docs/wire-format.md, one argument list per line."""
    block = re.search(r"```redis\n(.*?)```", DOC.read_text(), re.DOTALL)
    assert block is not None, "docs/wire-format.md lost its ```redis example"
    return [shlex.split(line) for line in block.group(1).splitlines() if line.strip()]


async def send_raw(server: TestServer, commands: list[list[str]]) -> list[Any]:
    """Send commands on one connection, reading raw replies (no client-side parsing)."""
    client = Redis.from_url(server.url)
    conn = await client.connection_pool.get_connection()
    replies = []
    try:
        for args in commands:
            await conn.send_command(*args)
            replies.append(await conn.read_response())
    finally:
        await client.connection_pool.release(conn)
        await client.aclose()
    return replies


async def test_documented_raw_enqueue_is_applied(
    server: TestServer, manager: CacheManager, raw: Redis
) -> None:
    replies = await send_raw(server, doc_commands())
    assert replies[-1] == [b"OK", 1]  # EXEC: SET stored, ZADD added
    worker = await run_burst_worker(ARQ_LAYOUT(server.url))
    assert (worker.complete, worker.failed) == (1, 0)
    got = await manager.download.get_progress("dl-42")
    assert got is not None
    assert (got.user_id, got.seq, got.bytes_done, got.progress_percent) == (
        "u-7",
        17,
        1048576,
        25.0,
    )
    result = json.loads(await raw.get("arq:result:progress-dl-42-17") or "null")
    assert result["s"] is True and result["r"] == "applied" and result["f"] == "update_progress"
    assert await raw.zcard("arq:queue") == 0


async def test_raw_batch_with_redis_py_commands(
    server: TestServer, manager: CacheManager, raw: Redis
) -> None:
    updates = [upd(f"dl-{i}", 3, user="u9").model_dump(mode="json") for i in range(20)]
    now = int(time.time() * 1000)
    record: dict[str, Any] = {
        "t": None,
        "f": "update_progress_batch",
        "a": [updates],
        "k": {},
        "et": now,
    }
    async with raw.pipeline(transaction=True) as tx:
        tx.set("arq:job:batch-1", json.dumps(record), px=86_400_000, nx=True)
        tx.zadd("arq:queue", {"batch-1": now}, nx=True)
        await tx.execute()
    await run_burst_worker(ARQ_LAYOUT(server.url))
    states = await manager.download.get_many([f"dl-{i}" for i in range(20)])
    assert all(s is not None and s.seq == 3 for s in states)
    result = json.loads(await raw.get("arq:result:batch-1") or "null")
    assert result["s"] is True and result["r"] == {"applied": 20}


async def test_our_record_is_what_arq_writes(server: TestServer, raw: Redis) -> None:
    payload = upd("dl-1", 1).model_dump(mode="json")
    arq_redis = await create_pool(
        RedisSettings.from_dsn(server.url), job_serializer=serialize, job_deserializer=deserialize
    )
    try:
        await arq_redis.enqueue_job("update_progress", payload, _job_id="via-arq")
    finally:
        await arq_redis.aclose()
    theirs = json.loads(await raw.get("arq:job:via-arq") or "null")
    ours = json.loads(job_record("update_progress", [payload], theirs["et"]))
    assert ours == theirs
    function, args, kwargs, _, _ = deserialize_job_raw(
        job_record("update_progress", [payload]), deserializer=deserialize
    )
    assert (function, list(args), kwargs) == ("update_progress", [payload], {})


async def test_record_that_is_not_json_fails_alone(
    server: TestServer, manager: CacheManager, raw: Redis
) -> None:
    now = int(time.time() * 1000)
    await raw.set("arq:job:garbage", b"\x80not json{")
    await raw.zadd("arq:queue", {"garbage": now - 10})
    await raw.set(
        "arq:job:unknown-fn", json.dumps({"t": 1, "f": "nope", "a": [], "k": {}, "et": now})
    )
    await raw.zadd("arq:queue", {"unknown-fn": now - 5})
    await enqueue_update(manager.client, upd("dl-after", 1))
    worker = await run_burst_worker(ARQ_LAYOUT(server.url))
    assert worker.failed == 2 and worker.retried == 0
    assert await manager.download.get_progress("dl-after") is not None  # the worker went on
    assert await raw.zcard("arq:queue") == 0 and not await raw.exists("arq:job:garbage")
    failed = json.loads(await raw.get("arq:result:garbage") or "null")
    assert failed["s"] is False and failed["f"] == "<unknown>"
    unknown = json.loads(await raw.get("arq:result:unknown-fn") or "null")
    assert unknown["s"] is False and "not found" in unknown["r"]["message"]
    letters = {d.job_id: d for d in await read_dead_letters(manager)}
    assert set(letters) == {"garbage", "unknown-fn"}  # the engine dead-letters both
    assert letters["garbage"].reason.startswith("invalid job record: not UTF-8")
    assert letters["unknown-fn"].reason == "function 'nope' not found"


async def test_documented_raw_enqueue_on_the_sharded_layout(
    server: TestServer, manager: CacheManager, raw: Redis
) -> None:
    """Section 1's sharded keys, written by hand as another language would: the record under
    the shard's job key, the id in the shard's queue, in one MULTI/EXEC (one hashtag)."""
    layout = QueueLayout.sharded("arq:queue", 8)
    job_id = "job-1"
    shard = layout.for_job(job_id)
    assert (shard.index, shard.hashtag) == (7, "{arq:queue:7}")  # the documented vector
    now = int(time.time() * 1000)
    update = upd("dl-sharded", 3).model_dump(mode="json")
    record = {"t": 1, "f": "update_progress", "a": [update], "k": {}, "et": now}
    replies = await send_raw(
        server,
        [
            ["MULTI"],
            ["SET", shard.job(job_id), json.dumps(record), "PX", "86400000", "NX"],
            ["ZADD", shard.queue, "NX", str(now), job_id],
            ["EXEC"],
        ],
    )
    assert replies[-1] == [b"OK", 1]
    counts = await run_burst_worker(
        worker_settings(server.url, queue={"layout": "sharded", "shards": 8})
    )
    assert (counts.complete, counts.failed) == (1, 0)
    got = await manager.download.get_progress("dl-sharded")
    assert got is not None and got.seq == 3
    result = json.loads(await raw.get(shard.result(job_id)) or "null")
    assert result["s"] is True and result["r"] == "applied"
