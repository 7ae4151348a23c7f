"""Logs an operator can afford: at INFO at most one log record per job, none for a job that
completed unless ``log.jobs = "all"``; failures, retries and dead letters always."""

from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from jobs.client import enqueue_jobs
from tests.conftest import TestServer
from tests.support.layout import LAYOUT, put_job, queue_length
from tests.support.processes import Fleet
from tests.support.waiting import wait_until

pytestmark = pytest.mark.timeout(120)

RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
"""A log record's first line (worker.cli's format); a traceback's lines do not start so."""
OK, FAILING = 300, 5


def records_per_job(log: str, ids: list[str]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for line in log.splitlines():
        if RECORD.match(line):
            for job_id in ids:
                if f"job {job_id} " in line:
                    counts[job_id] += 1
    return counts


@pytest.mark.parametrize("jobs_log", ["failures", "all"])
async def test_at_most_one_line_per_job_and_none_for_completed_ones_by_default(
    server: TestServer, raw: Redis, tmp_path: Path, jobs_log: str
) -> None:
    ok = [f"ok-{i}" for i in range(OK)]
    failing = [f"bad-{i}" for i in range(FAILING)]
    letters = ["garbled-1", "garbled-2"]
    sections: dict[str, dict[str, Any]] = {
        "worker": {"job_modules": ["tests.support.jobs"]},
        "log": {"level": "INFO", "jobs": jobs_log},
    }
    with Fleet(tmp_path, server.addr, **sections) as fleet:
        (worker,) = fleet.start(1)
        now = int(time.time() * 1000)
        assert all(await enqueue_jobs(raw, [("ping", (), j) for j in ok], layout=LAYOUT))
        specs = [("test_fail", ("out of cheese",), j) for j in failing]
        assert all(await enqueue_jobs(raw, specs, layout=LAYOUT))
        for job_id in letters:
            await put_job(raw, job_id, b'{"t": 1, "f": "ping"}', now)  # fields missing

        async def drained() -> bool:
            assert worker.running, fleet.logs()[-3000:]
            return await queue_length(raw) == 0

        await wait_until(drained, 60, "every job to end")
        worker.stop()
        log = worker.log()
    counts = records_per_job(log, ok + failing + letters)
    assert max(counts.values(), default=0) <= 1, counts.most_common(3)
    if jobs_log == "failures":
        assert not [j for j in ok if counts[j]], "a completed job was logged"
    else:
        assert all(counts[j] == 1 for j in ok)
    assert all(counts[j] == 1 for j in failing + letters), counts
    assert "out of cheese" in log and "dead-lettered" in log
