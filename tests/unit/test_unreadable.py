"""Reading one bad row: what it counts as, how it is told, how a failure is worded."""

from __future__ import annotations

import logging

import pytest
from redis import exceptions as redis_exc

from cache.download._models import parse_progress, progress_from_fields
from cache.errors import (
    CacheConnectionError,
    CacheResponseError,
    CacheTimeoutError,
    InvalidKeyError,
)
from cache.ratelog import RateLimitedLog
from cache.unreadable import Unreadable
from worker.http.dashboard.failures import describe_failure
from worker.http.fleet.schedules import claim_of, parse_run

pytestmark = pytest.mark.unit


def test_unreadable_counts_by_kind_and_names_the_key(caplog: pytest.LogCaptureFixture) -> None:
    skipped = Unreadable(RateLimitedLog(logging.getLogger("t.unreadable")))
    assert skipped.describe() == "" and skipped.summary() == {"total": 0, "by_kind": {}}
    with caplog.at_level(logging.WARNING, "t.unreadable"):
        skipped.skip("lock", "seen:lock:{x}", "WRONGTYPE")
        skipped.skip("heartbeat", "seen:workers member " + "w" * 500, "too long")
        skipped.skip("heartbeat", "seen:worker:w2", "pid: not an int")
    assert skipped.total == 3 and skipped.by_kind() == {"heartbeat": 2, "lock": 1}
    assert skipped.describe() == "3 unreadable entries skipped (heartbeat 2, lock 1)"
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "skipped an unreadable lock at seen:lock:{x}: WRONGTYPE"
    assert "(520 characters)" in lines[1] and len(lines[1]) < 250  # a huge key is cut


def test_progress_rows_that_are_not_a_state_say_why() -> None:
    assert parse_progress({}) is None  # expired: absent, not unreadable
    good = {"status": "downloading", "user": "u", "updated": "1700000000000"}
    assert parse_progress(good, "dl-1") is not None
    for fields, why in (
        ({"status": "exploded"}, "unknown status"),
        ({"user": "u"}, "no status"),
        ({"status": "queued", "updated": str(10**20)}, "out of range"),
    ):
        with pytest.raises(ValueError, match=why):
            parse_progress(fields, "dl-1")
        assert progress_from_fields(fields, "dl-1") is None  # the events' lenient reader


def test_slot_claims_and_history_entries_are_checked() -> None:
    assert claim_of(b"run:log_cache_stats:123") == "run:log_cache_stats:123"
    assert claim_of("done:x") == "done:x"
    for bad in (b"gibberish", b"run:", "skip:x", ["a list"], 7):
        assert claim_of(bad) is None, bad
    assert parse_run("[" * 100_000) is None  # nested too deep: unreadable, not a crash
    assert parse_run(b"\xff\xfe") is None


@pytest.mark.parametrize(
    ("exc", "status", "words"),
    [
        (CacheConnectionError("read heartbeats: store unreachable: refused"), 503, "unavailable"),
        (CacheTimeoutError("store timed out"), 503, "unavailable"),
        (TimeoutError("fleet read 'overview' did not finish within 2s"), 503, "unavailable"),
        (CacheResponseError("store error: WRONGTYPE Operation"), 502, "store error"),
        (InvalidKeyError("worker_id is longer than 128 characters"), 500, "unreadable data"),
    ],
)
def test_failures_are_worded_by_their_kind(exc: Exception, status: int, words: str) -> None:
    got, text = describe_failure(exc)
    assert got == status and text.startswith(words if status != 503 else "store " + words)
    if status != 503:
        assert "unavailable" not in text


def test_a_replica_s_readonly_is_not_an_outage_of_the_store() -> None:
    try:
        raise CacheResponseError("store error") from redis_exc.ReadOnlyError("READONLY")
    except CacheResponseError as exc:
        status, text = describe_failure(exc)
    assert status == 503 and "read-only" in text
