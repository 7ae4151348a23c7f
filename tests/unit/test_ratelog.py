"""``cache.ratelog.RateLimitedLog``: a flood of bad input cannot flood the log."""

from __future__ import annotations

import logging

import pytest

from cache.ratelog import RateLimitedLog

pytestmark = pytest.mark.unit


def test_at_most_burst_lines_per_window_then_says_how_many_were_held_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    log = RateLimitedLog(logging.getLogger("t.ratelog"), burst=3, window_s=60, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, "t.ratelog"):
        written = [log.warning("bad row %s", n) for n in range(1000)]
        assert sum(written) == 3 and log.suppressed == 997
        now[0] = 61.0
        assert log.warning("bad row %s", "late")
    lines = [r.getMessage() for r in caplog.records]
    assert lines[:3] == ["bad row 0", "bad row 1", "bad row 2"]
    assert lines[3] == "bad row late (997 similar line(s) suppressed before this one)"
    assert len(lines) == 4 and log.suppressed == 0 and log.total_suppressed == 997


def test_each_topic_has_its_own_limit(caplog: pytest.LogCaptureFixture) -> None:
    log = RateLimitedLog(logging.getLogger("t.ratelog2"), burst=2, clock=lambda: 0.0)
    with caplog.at_level(logging.WARNING, "t.ratelog2"):
        for n in range(100):
            log.warning("heartbeat %s", n, topic="heartbeat")
        assert log.warning("a dead letter", topic="dead_letter")
    assert [r.getMessage() for r in caplog.records][-1] == "a dead letter"
    assert log.suppressed == 98


def test_errors_share_the_limit_and_keep_their_level(caplog: pytest.LogCaptureFixture) -> None:
    """The engine's refused claims: a store at its limit refuses every poll (20 a second)."""
    log = RateLimitedLog(logging.getLogger("t.ratelog3"), burst=5, clock=lambda: 0.0)
    with caplog.at_level(logging.WARNING, "t.ratelog3"):
        written = [log.error("claim on queue shard 0 refused", topic="claim:0") for _ in range(200)]
    assert sum(written) == 5 and log.suppressed == 195
    assert {r.levelno for r in caplog.records} == {logging.ERROR} and len(caplog.records) == 5
