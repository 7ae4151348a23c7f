"""The job/result record rules of ``jobs.record`` at their edges, through the deserializer."""

from __future__ import annotations

import json
from typing import Any

import pytest
from arq.jobs import DeserializationError, deserialize_job_raw, deserialize_result

from jobs.record import MAX_EPOCH_MS, MAX_TRIES
from jobs.serializer import InvalidJobRecordError, deserialize, record_problem, serialize

GOOD: dict[str, Any] = {"t": None, "f": "update_progress", "a": [{}], "k": {}, "et": 1}
RESULT: dict[str, Any] = {
    **GOOD,
    "t": 1,
    "s": False,
    "r": {"error": "X", "message": "y"},
    "st": 2,
    "ft": 3,
    "q": "arq:queue",
    "id": "j",
}


def raw(record: Any) -> bytes:
    return json.dumps(record).encode()


@pytest.mark.parametrize(
    "change",
    [
        {"t": 0},
        {"t": MAX_TRIES},
        {"et": 0},
        {"et": MAX_EPOCH_MS},
        {"f": "x" * 256},
        {"a": []},
        {"k": {"update": 1}},
        {"extra": [1, 2]},
    ],
)
def test_edges_that_are_valid(change: dict[str, Any]) -> None:
    record = {**GOOD, **change}
    assert deserialize(raw(record)) == record
    assert record_problem(raw(record)) is None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"t": True}, "'t'"),
        ({"t": -1}, "'t'"),
        ({"t": MAX_TRIES + 1}, "'t'"),
        ({"t": 1.0}, "'t'"),
        ({"et": False}, "'et'"),
        ({"et": -1}, "'et'"),
        ({"et": MAX_EPOCH_MS + 1}, "'et'"),
        ({"et": 1.5}, "'et'"),
        ({"f": ""}, "'f'"),
        ({"f": "x" * 257}, "'f'"),
        ({"f": ["update_progress"]}, "'f'"),
        ({"a": {"0": 1}}, "'a'"),
        ({"k": []}, "'k'"),
        ({"s": True}, "'r', 'st', 'ft' missing"),
    ],
)
def test_edges_that_are_refused(change: dict[str, Any], field: str) -> None:
    data = raw({**GOOD, **change})
    with pytest.raises(InvalidJobRecordError, match=field):
        deserialize(data)
    with pytest.raises(DeserializationError) as wrapped:  # what ARQ's run_job catches
        deserialize_job_raw(data, deserializer=deserialize)
    assert field in json.loads(serialize(wrapped.value))["message"]  # the failed result says it


@pytest.mark.parametrize("name", ["t", "f", "a", "k", "et"])
def test_each_field_is_required(name: str) -> None:
    record = {k: v for k, v in GOOD.items() if k != name}
    assert record_problem(raw(record)) == f"field(s) '{name}' missing"


def test_not_an_object_not_json_not_utf8() -> None:
    assert record_problem(b"[1]") == "a record must be a JSON object, got list"
    assert (record_problem(b"{") or "").startswith("not JSON")
    assert (record_problem(b"\xff{}") or "").startswith("not UTF-8")
    assert (record_problem(raw(GOOD).decode().encode("utf-16")) or "").startswith("not UTF-8")
    assert record_problem(b"[" * 100_000) == "JSON nested too deeply"


def test_result_records_are_checked_too() -> None:
    assert deserialize_result(raw(RESULT), deserializer=deserialize).job_id == "j"
    changes: list[dict[str, Any]] = [{"s": 1}, {"st": "2"}, {"ft": None}, {"q": 5}, {"id": []}]
    for change in changes:
        assert record_problem(raw({**RESULT, **change})) is not None, change
    without_q = {k: v for k, v in RESULT.items() if k not in ("q", "id")}
    assert record_problem(raw(without_q)) is None
