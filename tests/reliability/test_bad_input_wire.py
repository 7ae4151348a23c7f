"""Random bad input through the raw wire format: ARQ job records written with plain Redis
commands (as a non-Python producer would), mixing valid and invalid ``update_progress``
payloads. Every invalid one ends in the dead-letter list with a reason, every valid one is
applied, the worker keeps running, and no other data changes."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from redis.asyncio import Redis

from cache.download import ProgressUpdate
from cache.manager import CacheManager
from jobs.deadletter import read_dead_letters
from tests.conftest import TestServer
from tests.support.layout import job_key, queue_length, queue_of
from tests.support.processes import run_burst_worker, worker_settings

SENTINEL = "seen:t:sentinel"
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False),
    st.text(max_size=30),
)
ids = st.one_of(st.from_regex(r"[a-z][a-z0-9-]{0,12}", fullmatch=True), st.text(max_size=20))
statuses = st.one_of(
    st.sampled_from(["queued", "downloading", "paused", "completed", "failed", "cancelled"]),
    st.text(max_size=10),
)
payloads = st.one_of(
    st.fixed_dictionaries(
        {
            "job_id": ids,
            "user_id": ids,
            "status": statuses,
            "seq": st.one_of(st.integers(), scalars),
        },
        optional={
            "bytes_done": st.one_of(st.integers(), scalars),
            "bytes_total": st.one_of(st.integers(), scalars),
            "error": st.one_of(st.none(), st.text(max_size=3000)),
            "extra": scalars,
        },
    ),
    scalars,
    st.lists(scalars, max_size=3),
)


def is_valid(payload: Any) -> bool:
    try:
        ProgressUpdate.model_validate(payload)
    except (ValidationError, ValueError, TypeError):
        return False
    return True


async def enqueue_raw(raw: Redis, payload: Any) -> None:
    """What docs/wire-format.md tells a non-Python producer to do."""
    job_id = uuid.uuid4().hex
    now = time.time_ns() // 1_000_000
    record = json.dumps({"t": 0, "f": "update_progress", "a": [payload], "k": {}, "et": now})
    await raw.set(job_key(job_id), record, px=86_400_000, nx=True)
    await raw.zadd(queue_of(job_id), {job_id: now})


@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
@given(batch=st.lists(payloads, min_size=10, max_size=40))
async def test_random_payloads_over_the_wire(
    manager: CacheManager, raw: Redis, server: TestServer, batch: list[Any]
) -> None:
    await raw.flushdb()
    await raw.set(SENTINEL, "untouched")
    # unique ids per valid payload, so each valid one must be visible afterwards
    for i, payload in enumerate(batch):
        if isinstance(payload, dict) and is_valid(payload):
            payload["job_id"] = f"job-{i}"
    expected_valid = [p for p in batch if is_valid(p)]
    for payload in batch:
        await enqueue_raw(raw, payload)
    await enqueue_raw(raw, {"job_id": "canary", "user_id": "u", "status": "downloading", "seq": 1})

    worker = await run_burst_worker(worker_settings(server.addr), max_tries=1)

    assert await queue_length(raw) == 0
    assert worker.complete == len(expected_valid) + 1
    assert worker.failed == len(batch) - len(expected_valid)
    letters = await read_dead_letters(manager, limit=1000)
    assert len(letters) == len(batch) - len(expected_valid)
    assert all(letter.reason and letter.function == "update_progress" for letter in letters)
    for payload in expected_valid:
        assert await manager.download.get_progress(payload["job_id"]) is not None
    assert await manager.download.get_progress("canary") is not None
    assert await raw.get(SENTINEL) == "untouched"
