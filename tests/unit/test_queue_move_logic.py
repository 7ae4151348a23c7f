"""The layout mover's bookkeeping without a store: statuses to reports, which result keys are
this queue's, what the command's arguments mean."""

from __future__ import annotations

import argparse

import pytest
from redis.asyncio import Redis

from jobs.queue_move import (
    DROPPED,
    DUPLICATE,
    EXAMPLES,
    FAILED,
    HELD,
    MOVED,
    PassReport,
    QueueMoveError,
    QueueMover,
    Tally,
)
from jobs.wire.layout import QueueLayout
from worker.cli import build_parser
from worker.migrate_queue import layouts
from worker.settings import load_settings

ARQ = QueueLayout.arq()
SHARDED = QueueLayout.sharded("arq:queue", 4)


def test_a_tally_counts_everything_and_keeps_a_few_examples() -> None:
    tally = Tally()
    for i in range(EXAMPLES + 5):
        tally.add(f"j{i}", "why")
    assert tally.count == EXAMPLES + 5 and len(tally.examples) == EXAMPLES
    assert tally.as_dict()["examples"][0] == ["j0", "why"]


def test_statuses_become_the_report() -> None:
    report = PassReport()
    count = QueueMover._count
    assert count(report, "a", MOVED, MOVED, "") == 0
    assert count(report, "b", HELD, 0, "") == 1
    assert count(report, "c", DUPLICATE, 0, "k exists") == 1
    assert count(report, "d", DROPPED, DROPPED, "k exists") == 0
    assert count(report, "e", FAILED, FAILED, "k held a set") == 1
    assert count(report, "f", 0, DUPLICATE, "r exists") == 0
    assert count(report, "g", 0, FAILED, "r held a list") == 0
    assert (report.moved, report.results_moved) == (1, 1)
    assert report.held.examples == [("b", "")]
    assert report.duplicates.examples == [("c", "k exists"), ("f", "r exists")]
    assert report.dropped.count == 1  # one id, its job and result both dropped
    assert [j for j, _ in report.failed.examples] == ["e", "g"]
    assert report.results_left == 3  # f's duplicate, e's and g's failures
    assert report.stayed == 2  # c and e stay queued for a reason; b is held
    assert not report.empty


def test_only_this_queues_sharded_result_keys_are_taken() -> None:
    mover = QueueMover(Redis(), SHARDED, ARQ)
    pattern, parse = mover._result_match()
    assert pattern == "{arq:queue:*}:result:*"
    parsed = parse("{arq:queue:3}:result:job:1")
    assert parsed is not None and parsed[0].index == 3 and parsed[1] == "job:1"
    for other in (
        "{arq:queue:4}:result:x",  # beyond the shards given
        "{arq:queue:01}:result:x",  # not a shard's tag
        "{arq:queue:other:1}:result:x",  # another queue's
        "{arq:queue:1}:job:x",
    ):
        assert parse(other) is None, other
    arq_pattern, arq_parse = QueueMover(Redis(), ARQ, SHARDED)._result_match()
    assert arq_pattern == "arq:result:*"
    assert arq_parse("arq:result:a") == (ARQ.shards[0], "a")
    assert arq_parse("arq:result:") is None


def test_the_mover_goes_between_the_two_kinds_of_one_queue_only() -> None:
    with pytest.raises(QueueMoveError, match="not sharded to sharded"):
        QueueMover(Redis(), SHARDED, QueueLayout.sharded("arq:queue", 8))
    with pytest.raises(QueueMoveError, match="one queue"):
        QueueMover(Redis(), ARQ, QueueLayout.sharded("other", 2))
    with pytest.raises(QueueMoveError, match="batch"):
        QueueMover(Redis(), ARQ, SHARDED, batch=0)


def args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["migrate-queue", *argv])


def test_the_command_reads_the_queue_from_the_settings() -> None:
    settings = load_settings(queue={"name": "jobs", "shards": 6})
    source, target = layouts(args("--to", "sharded"), settings)
    assert (source.kind, source.name) == ("arq", "jobs")
    assert (target.kind, target.count) == ("sharded", 6)
    source, target = layouts(args("--to", "arq", "--shards", "3"), settings)
    assert (source.kind, source.count, target.kind) == ("sharded", 3, "arq")
    with pytest.raises(ValueError, match="both sharded"):
        layouts(args("--to", "sharded", "--from", "sharded"), settings)


@pytest.mark.parametrize(
    "argv",
    [["--to", "up"], ["--to", "arq", "--batch", "0"], ["--to", "arq", "--shards", "1025"], []],
)
def test_bad_arguments_are_refused_by_the_parser(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        args(*argv)
    assert stop.value.code == 2
