"""The pure parts of the fleet read model: slot states, history entries, reason kinds, lock
names and holders, stream entry times."""

from __future__ import annotations

import json

import pytest

from jobs.inspect import lease_holder
from worker.fleet.deadletters import reason_kind
from worker.fleet.downloads import entry_ms
from worker.fleet.locks import lock_name
from worker.fleet.models import SLOT_STATES, RunView, Schedule, SlotView
from worker.fleet.schedules import last_success_ms, parse_run, slot_state

P = 300
SLOT = 6_000_000
START = SLOT * P * 1000
GRACE = 30_000


def run(job: str, slot: int | None, outcome: str, covered: tuple[int, ...] = ()) -> RunView:
    return RunView(job, slot, outcome, START, 1.5, "w1", 1, covered)


def own(slot: int = SLOT) -> str:
    return f"job:{slot * P * 1000 + 7}"


def state(claim: str | None, runs: list[RunView], now: int = START + 600_000) -> tuple[str, ...]:
    view = slot_state("job", P, SLOT, claim, runs, now, GRACE)
    return tuple(x for x in (view.state, view.job_id, view.covered_by) if x is not None)


def test_future_and_fresh_slots_are_expected() -> None:
    assert state(None, [], now=START - 1) == ("expected",)
    assert state(None, [], now=START + GRACE - 1) == ("expected",)
    assert state(None, [], now=START + GRACE) == ("missed",)


def test_claims_decide_while_they_exist() -> None:
    assert state(f"run:{own()}", []) == ("claimed", own())
    assert state(f"done:{own()}", [run(own(), SLOT, "ok")]) == ("done", own())
    assert state(f"done:{own()}", []) == ("done", own())  # closed, not yet recorded
    later = own(SLOT + 1)
    assert state(f"done:{later}", [run(own(), SLOT, "deferred")]) == ("done", own(), later)
    error = [run(own(), SLOT, "error: ValueError")]
    assert state(f"done:{own()}", error) == ("failed", own())


def test_the_history_decides_once_the_claim_expired() -> None:
    assert state(None, [run(own(), SLOT, "ok")]) == ("done", own())
    later = own(SLOT + 2)
    covered = [run(later, SLOT + 2, "ok", (SLOT, SLOT + 1)), run(own(), SLOT, "deferred")]
    assert state(None, covered) == ("done", own(), later)
    assert state(None, [run(own(), SLOT, "error: KeyError")]) == ("failed", own())
    assert state(None, [run(own(), SLOT, "cancelled")]) == ("skipped", own())
    assert state(None, [run(own(), SLOT, "deferred")]) == ("skipped", own())
    assert state(None, [run("manual-1", None, "ok")]) == ("missed",)


def test_history_entries_are_parsed_defensively() -> None:
    entry = {"job_id": "j", "slot": 4, "try": 2, "worker": "w", "started_ms": 10, "outcome": "ok"}
    parsed = parse_run(json.dumps({**entry, "seconds": 0.5, "covered": [1, "x", 2]}))
    assert parsed == RunView("j", 4, "ok", 10, 0.5, "w", 2, (1, 2))
    assert parse_run(b"not json") is None
    assert parse_run(json.dumps([1, 2])) is None
    assert parse_run(json.dumps({"slot": 1})) is None
    odd = parse_run(json.dumps({"job_id": "j", "slot": "4", "try": True, "seconds": "1"}))
    assert odd == RunView("j", None, "?", 0, None, None, None, ())


def test_last_success_is_the_newest_ok_run_s_end() -> None:
    runs = [run("c", 3, "error: X"), run("b", 2, "ok"), run("a", 1, "ok")]
    assert last_success_ms(runs) == START + 1500
    assert last_success_ms([run("c", 3, "deferred")]) is None


@pytest.mark.parametrize(
    ("reason", "kind"),
    [
        ("unreadable", "unreadable"),
        ("invalid job record: not JSON", "invalid_record"),
        ("function 'nope' not found", "unknown_function"),
        ("seq: Input should be a valid integer", "invalid_payload"),
        ("function: missing", "invalid_payload"),
    ],
)
def test_reason_kinds_are_bounded(reason: str, kind: str) -> None:
    assert reason_kind(reason) == kind


def test_lock_names_and_holders() -> None:
    assert lock_name("seen:lock:{a:b/c}", "seen:lock:") == "a:b/c"
    assert lock_name("seen:lock:{a}:fence", "seen:lock:") is None
    assert lock_name("seen:other:{a}", "seen:lock:") is None
    assert lease_holder("vm-1-abc:0123456789abcdef") == "vm-1-abc"
    assert lease_holder("1") == "arq (no token)"


def test_stream_entry_time() -> None:
    assert entry_ms(b"1700000000123-4") == 1700000000123
    assert entry_ms("junk") is None


def test_schedule_counts_every_state() -> None:
    slots = [SlotView(1, 0, "done"), SlotView(2, 0, "done"), SlotView(3, 0, "missed")]
    schedule = Schedule("job", P, slots, [], None)
    assert schedule.counts == {**dict.fromkeys(SLOT_STATES, 0), "done": 2, "missed": 1}
    assert schedule.count("done") == 2 and schedule.count("expected") == 0
