"""What the engine still shares with ARQ is checked against the pinned ARQ: its result records,
its periodic job times and ids, and the exceptions jobs raise to steer ARQ."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import arq.jobs
import arq.worker
import pytest
from arq.cron import next_cron

from jobs.schedule import cron_fields
from jobs.serializer import deserialize, serialize
from worker.engine import run
from worker.engine.records import JobRecord, read_record, result_record
from worker.engine.schedule import Periodic, due_now

pytestmark = pytest.mark.unit

RECORD = JobRecord("f", (1, "a", {"b": [2]}), {"k": True}, 3, 1_700_000_000_000, None)


@pytest.mark.parametrize(
    ("success", "value"),
    [(True, {"x": 1}), (True, None), (False, ValueError("boom")), (False, TimeoutError())],
)
def test_result_records_are_arqs_byte_for_byte(success: bool, value: object) -> None:
    ours = result_record(
        record=RECORD,
        job_id="j-1",
        job_try=2,
        success=success,
        result=value,
        start_ms=1_700_000_000_100,
        finish_ms=1_700_000_000_200,
        queue="arq:queue",
    )
    theirs = arq.jobs.serialize_result(
        "f",
        RECORD.args,
        RECORD.kwargs,
        2,
        RECORD.enqueue_ms,
        success,
        value,
        1_700_000_000_100,
        1_700_000_000_200,
        "ref",
        "arq:queue",
        job_id="j-1",
        serializer=serialize,
    )
    assert ours == theirs
    info = arq.jobs.deserialize_result(ours, deserializer=deserialize)
    assert (info.success, info.job_try, info.job_id, info.queue_name) == (
        success,
        2,
        "j-1",
        "arq:queue",
    )


def test_job_records_read_as_arq_reads_them() -> None:
    raw = arq.jobs.serialize_job(
        "f", (1, 2), {"x": 3}, None, 1_700_000_000_000, serializer=serialize
    )
    record = read_record(raw)
    function, args, kwargs, tries, enqueued = arq.jobs.deserialize_job_raw(
        raw, deserializer=deserialize
    )
    assert (record.function, record.args, record.kwargs, record.tries, record.enqueue_ms) == (
        function,
        tuple(args),
        kwargs,
        tries,
        enqueued,
    )


@pytest.mark.parametrize("period", [1, 5, 30, 60, 300, 900, 3600, 21600])
def test_periodic_times_and_ids_are_arqs_cron(period: int) -> None:
    """The engine enqueues the same job ids, due at the same times, as ARQ's ``cron(...,
    unique=True)`` with our fields (``jobs.schedule.cron_fields``)."""
    schedule = Periodic("tick", period)
    fields = cron_fields(period)
    start = datetime(2026, 12, 7, 19, 3, 7, 654_000, tzinfo=UTC)
    moment = start
    for _ in range(5):
        now_ms = int(moment.timestamp() * 1000)
        theirs = next_cron(moment, microsecond=123_456, **fields)
        assert schedule.due_after(now_ms) == int(theirs.timestamp() * 1000)
        moment = theirs + timedelta(milliseconds=1)
    assert schedule.job_id(1_700_000_000_123) == "tick:1700000000123"


def test_a_first_look_only_sets_the_next_time() -> None:
    schedule = Periodic("tick", 60)
    assert due_now([schedule], 1_700_000_000_000, 1000) == []
    due = schedule.next_ms
    assert due_now([schedule], due - 500, 1000) == [(schedule, due)]  # up to a second ahead
    assert schedule.next_ms == due + 60_000
    assert due_now([schedule], due + 100, 1000) == []  # one slot per time


def test_jobs_steer_the_engine_with_arqs_own_exceptions() -> None:
    used = vars(run)
    assert used["Retry"] is arq.worker.Retry
    assert used["RetryJob"] is arq.worker.RetryJob
    assert used["JobExecutionFailed"] is arq.worker.JobExecutionFailed
    assert arq.worker.Retry(defer=2).defer_score == 2000
