"""Ids ending in a newline never reach the store: the three cases seen in the
field, against a real server and a real ARQ worker."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError
from redis.asyncio import Redis

from cache.errors import InvalidKeyError
from cache.manager import CacheManager
from cache.session_cache import SessionData
from jobs.client import enqueue_jobs
from jobs.deadletter import read_dead_letters
from tests.conftest import TestServer
from tests.support.layout import LAYOUT, job_key, queue_of
from tests.support.processes import run_burst_worker, worker_settings


async def all_keys(raw: Redis) -> list[str]:
    return [key async for key in raw.scan_iter(match="*", count=1000)]


async def test_session_id_with_a_trailing_newline_is_refused(
    manager: CacheManager, raw: Redis
) -> None:
    with pytest.raises(ValidationError, match="session_id"):
        SessionData(session_id="s1\n", user_id="u1", expires_at=datetime.now(UTC) + timedelta(1))
    with pytest.raises(InvalidKeyError, match=r"'s1\\n'"):
        await manager.session.get_session("s1\n")
    with pytest.raises(InvalidKeyError):
        await manager.session.delete_session("s1\n")
    assert await all_keys(raw) == []


async def test_lock_name_with_a_trailing_newline_is_refused(
    manager: CacheManager, raw: Redis
) -> None:
    with pytest.raises(InvalidKeyError, match=r"lock name 'job\\n'"):
        await manager.locks.acquire("job\n", wait=0)
    with pytest.raises(InvalidKeyError):
        await manager.locks.try_acquire("job\n")
    with pytest.raises(InvalidKeyError):
        async with manager.locks.hold("job\n"):
            pytest.fail("the body must not run")
    with pytest.raises(InvalidKeyError):
        await manager.session.acquire_lock("job\n")
    assert await all_keys(raw) == []


async def test_enqueue_refuses_a_job_id_or_queue_with_a_newline(raw: Redis) -> None:
    with pytest.raises(InvalidKeyError, match="job id"):
        await enqueue_jobs(raw, [("update_progress", [{}], "dl-w\n")], layout=LAYOUT)
    with pytest.raises(InvalidKeyError, match="queue name"):
        await enqueue_jobs(raw, [("update_progress", [{}], "dl-w")], queue_name="arq:queue\n")
    assert await all_keys(raw) == []


async def test_wire_job_whose_download_id_ends_in_a_newline_is_dead_lettered(
    manager: CacheManager, raw: Redis, server: TestServer
) -> None:
    """A producer writing the raw wire format (docs/wire-format.md) with ``job_id "dl-w\\n"``:
    the job fails and is dead-lettered; nothing of ``dl-w`` is applied; a valid job next to it
    is."""
    now = time.time_ns() // 1_000_000
    for download in ("dl-w\n", "dl-ok"):
        update = {"job_id": download, "user_id": "u1", "status": "downloading", "seq": 1}
        job = uuid.uuid4().hex
        record = json.dumps({"t": 0, "f": "update_progress", "a": [update], "k": {}, "et": now})
        await raw.set(job_key(job), record, px=86_400_000, nx=True)
        await raw.zadd(queue_of(job), {job: now})

    worker = await run_burst_worker(worker_settings(server.addr), max_tries=1)

    assert (worker.complete, worker.failed) == (1, 1)
    assert await manager.download.get_progress("dl-ok") is not None
    assert not [k for k in await all_keys(raw) if "dl-w" in k]
    letters = await read_dead_letters(manager)
    assert len(letters) == 1
    assert "job_id" in letters[0].reason
    assert "dl-w\\n" in letters[0].payload
