"""Malformed ARQ job records through a real ``seen-worker run`` process.

A record that is valid JSON but has a wrong type in a field ARQ reads outside its per-job error
handling used to end the worker (exit 1), and every restarted worker again, since the record
stayed queued. Now every such record fails its own job (a result is written), is dead-lettered
with the reason and leaves the queue; the worker goes on and valid jobs still apply.

The shapes are drawn field by field from a "valid" and a "bad" strategy, so what each record
must end as is known from how it was drawn, not from the code under test.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
from arq.jobs import Job, SerializationError
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from cache.manager import CacheManager
from jobs.deadletter import DeadLetter, read_dead_letters
from jobs.errors import JobFailedError
from tests.conftest import cache_config_for
from tests.support.layout import SHARDED, job_key, queue_of, result_key
from tests.support.processes import Fleet, WorkerProcess, arq_pool, queue_pool
from tests.support.waiting import wait_until
from worker.embedded import EmbeddedServer

UPDATE = "update_progress"
NOW = time.time_ns() // 1_000_000


@dataclass
class Live:
    """One worker process on a private server, kept for a whole test."""

    worker: WorkerProcess
    fleet: Fleet
    raw: Redis
    manager: CacheManager


@pytest.fixture
async def live(private_server: EmbeddedServer, tmp_path: Path) -> AsyncIterator[Live]:
    raw = Redis.from_url(private_server.url)
    with Fleet(tmp_path, private_server.addr) as fleet:
        (worker,) = fleet.start(1)
        async with await CacheManager.connect(cache_config_for(private_server.url)) as manager:
            live = Live(worker, fleet, raw, manager)
            await apply_canary(live)  # started and polling
            yield live
    await raw.aclose()


def update(download: str) -> dict[str, Any]:
    return {"job_id": download, "user_id": "u1", "status": "downloading", "seq": 1}


async def put_raw(raw: Redis, job_id: str, record: bytes) -> None:
    """What docs/wire-format.md tells a non-Python producer to do."""
    async with raw.pipeline(transaction=True) as tx:
        tx.set(job_key(job_id), record, px=86_400_000)
        tx.zadd(queue_of(job_id), {job_id: time.time_ns() // 1_000_000})
        await tx.execute()


def record_bytes(value: Any) -> bytes:
    return json.dumps(value).encode()


async def apply_canary(live: Live, within: float = 20.0) -> None:
    """A valid ``update_progress`` job, enqueued now, must apply."""
    download = f"canary-{uuid.uuid4().hex[:8]}"
    job_id = uuid.uuid4().hex
    record: dict[str, Any] = {"t": None, "f": UPDATE, "a": [update(download)], "k": {}, "et": NOW}
    await put_raw(live.raw, job_id, record_bytes(record))

    async def applied() -> bool:
        if not live.worker.running:
            raise AssertionError(f"worker exited:\n{live.fleet.logs()[-4000:]}")
        return await live.manager.download.get_progress(download) is not None

    await wait_until(applied, within, f"canary {download} to apply")


async def settle(live: Live, job_ids: list[str], within: float = 20.0) -> dict[str, Any]:
    """Wait until every job has left the queue and has a result; the results by id."""

    async def done() -> bool:
        if not live.worker.running:
            raise AssertionError(f"worker exited:\n{live.fleet.logs()[-4000:]}")
        async with live.raw.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.zscore(queue_of(job_id), job_id)
                pipe.exists(result_key(job_id))
            replies = await pipe.execute()
        return all(s is None for s in replies[0::2]) and all(replies[1::2])

    await wait_until(done, within, f"{len(job_ids)} jobs to finish")
    results = {}
    for job_id in job_ids:
        results[job_id] = json.loads(await live.raw.get(result_key(job_id)) or b"null")
        assert not await live.raw.exists(job_key(job_id)), f"record {job_id} left behind"
    return results


async def letters_by_job(live: Live) -> dict[str | None, DeadLetter]:
    return {d.job_id: d for d in await read_dead_letters(live.manager, limit=1000)}


# -- the four shapes seen crash-looping the fleet -------------------------------------------

CRASHERS: dict[str, dict[str, Any]] = {
    "tries-str": {"t": "1"},
    "tries-list": {"t": [1]},
    "et-str": {"et": "x"},
    "et-null": {"et": None},
}


async def test_the_four_crashing_shapes_fail_alone(live: Live) -> None:
    ids = {}
    for name, change in CRASHERS.items():
        record = {"t": 0, "f": UPDATE, "a": [update(f"dl-{name}")], "k": {}, "et": NOW, **change}
        ids[name] = f"bad-{name}-{uuid.uuid4().hex[:6]}"
        await put_raw(live.raw, ids[name], record_bytes(record))
    results = await settle(live, list(ids.values()))
    letters = await letters_by_job(live)
    for name, job_id in ids.items():
        field = next(iter(CRASHERS[name]))
        result = results[job_id]
        assert result["s"] is False and f"'{field}'" in result["r"]["message"], result
        assert job_id in letters, f"{name} not dead-lettered"
        assert letters[job_id].reason.startswith("invalid job record: "), letters[job_id]
        assert f"'{field}'" in letters[job_id].reason and letters[job_id].function == UPDATE
        assert await live.manager.download.get_progress(f"dl-{name}") is None
    pool = queue_pool(live.fleet.addr)
    try:
        with pytest.raises(JobFailedError, match="invalid job record: 't'"):
            await pool.job(ids["tries-str"]).result(5)
    finally:
        await pool.aclose()
    if not SHARDED:  # ARQ's own Job API reads the same result record
        arq = arq_pool(live.fleet.addr)
        try:
            with pytest.raises(SerializationError, match="invalid job record: 't'"):
                await Job(ids["tries-str"], arq, _deserializer=arq.job_deserializer).result()
        finally:
            await arq.aclose()
    await apply_canary(live)
    assert live.worker.running
    assert "the worker goes on" not in live.worker.log()  # handled per job, not by the net


async def test_a_job_key_of_the_wrong_type_does_not_end_the_worker(live: Live) -> None:
    """ARQ's own bookkeeping failed on it (WRONGTYPE) and retried it for ever; the claim now
    sees it, and the job fails alone, dead-lettered with the key named."""
    await cast(Awaitable[int], live.raw.hset(job_key("wrong-type"), "t", "0"))
    await live.raw.zadd(queue_of("wrong-type"), {"wrong-type": time.time_ns() // 1_000_000})
    results = await settle(live, ["wrong-type"])
    assert results["wrong-type"]["s"] is False
    assert f"{job_key('wrong-type')} held a hash" in results["wrong-type"]["r"]["message"]
    letters = await letters_by_job(live)
    assert f"{job_key('wrong-type')} held a hash" in letters["wrong-type"].reason
    await apply_canary(live)
    assert live.worker.running
    assert "Traceback" not in live.worker.log()


# -- property: every field, every JSON type ---------------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(),  # NaN and the infinities too: Python's json writes them
    st.text(max_size=12),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
MISSING = object()
ARGS = object()
"""Drawn for a valid ``a``: replaced by ``[update]`` (or by a bad payload)."""
DOWNLOAD = "dl-PLACEHOLDER"


def not_int(value: Any) -> bool:
    return not isinstance(value, int) or isinstance(value, bool)


# (valid, bad) strategies per field; the bad ones never overlap the valid ones
FIELDS: dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]] = {
    "t": (
        st.one_of(st.none(), st.integers(0, 3)),
        st.one_of(
            json_values.filter(lambda v: v is not None and not_int(v)),
            st.integers(-(2**70), -1),
            st.integers(2**31, 2**70),
            st.just(MISSING),
        ),
    ),
    "f": (
        st.just(UPDATE),
        st.one_of(
            json_values.filter(lambda v: not isinstance(v, str)),
            st.just(""),
            st.text(min_size=257, max_size=300),
            st.just(MISSING),
        ),
    ),
    "a": (
        st.just(ARGS),
        st.one_of(json_values.filter(lambda v: not isinstance(v, list)), st.just(MISSING)),
    ),
    "k": (
        st.just({}),
        st.one_of(json_values.filter(lambda v: not isinstance(v, dict)), st.just(MISSING)),
    ),
    "et": (
        st.integers(0, NOW),
        st.one_of(
            json_values.filter(not_int),
            st.integers(-(2**70), -1),
            st.integers(253_402_128_000_001, 2**70),
            st.just(MISSING),
        ),
    ),
}


@st.composite
def shapes(draw: st.DrawFn) -> tuple[str, bytes]:
    """(expected outcome, record bytes): ``invalid``, ``unknown`` function, bad ``payload``
    or ``ok``."""
    kind = draw(st.sampled_from(["fields", "fields", "fields", "valid", "unknown", "top", "bytes"]))
    if kind == "top":
        top = draw(json_values.filter(lambda v: not isinstance(v, dict)))
        return "invalid", record_bytes(top)
    if kind == "bytes":
        junk = draw(st.binary(min_size=1, max_size=20))
        return "invalid", b"\xff" + junk  # never UTF-8
    bad: set[str] = set()
    if kind == "fields":
        bad = set(draw(st.lists(st.sampled_from(sorted(FIELDS)), min_size=1, max_size=3)))
    record: dict[str, Any] = {}
    for name, (good, wrong) in FIELDS.items():
        value = draw(wrong if name in bad else good)
        if value is not MISSING:
            record[name] = value
    payload_bad = "a" not in bad and draw(st.booleans())
    if record.get("a") is ARGS:
        record["a"] = [draw(json_values) if payload_bad else update(DOWNLOAD)]
    extra = draw(st.dictionaries(st.sampled_from(["x", "deferred", "q", "id"]), json_values))
    record.update(extra)
    if kind == "fields":
        return "invalid", record_bytes(record)
    if kind == "unknown":
        record["f"] = "no_such_" + draw(st.from_regex(r"[a-z]{1,8}", fullmatch=True))
        return "unknown", record_bytes(record)
    return ("payload" if payload_bad else "ok"), record_bytes(record)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(batch=st.lists(shapes(), min_size=4, max_size=8))
@pytest.mark.timeout(120)
async def test_record_shapes_never_stop_the_worker(
    live: Live, batch: list[tuple[str, bytes]]
) -> None:
    jobs: dict[str, str] = {}
    for i, (expected, record) in enumerate(batch):
        job_id = f"shape-{i}-{uuid.uuid4().hex[:8]}"
        if expected == "ok":  # its own download, to see it applied
            record = record.replace(DOWNLOAD.encode(), job_id.encode())
        jobs[job_id] = expected
        await put_raw(live.raw, job_id, record)
    for expected in jobs.values():
        event(f"outcome: {expected}")
    results = await settle(live, list(jobs))
    letters = await letters_by_job(live)
    for job_id, expected in jobs.items():
        result = results[job_id]
        if expected == "ok":
            assert result["s"] is True, result
            assert await live.manager.download.get_progress(job_id) is not None
            assert job_id not in letters
            continue
        assert result["s"] is False, (expected, result)
        assert job_id in letters, f"{expected} job {job_id} not dead-lettered: {result}"
        reason = letters[job_id].reason
        if expected == "invalid":
            assert reason.startswith("invalid job record: "), reason
            assert "invalid job record" in result["r"]["message"]
        elif expected == "unknown":
            assert reason.startswith("function 'no_such_"), reason
        else:
            assert letters[job_id].function == UPDATE and "invalid job record" not in reason
    await apply_canary(live)
    assert live.worker.running
