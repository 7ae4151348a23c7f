"""Progress values without a server: validation, parsing, sharding, job records, dead letters."""

from __future__ import annotations

import json
import zlib
from typing import Any

import pytest
from arq.jobs import deserialize_job_raw
from pydantic import ValidationError

from cache.download._layout import member, parse_member
from cache.download._models import (
    MAX_INT,
    ApplyOutcome,
    DownloadProgress,
    DownloadStatus,
    ProgressUpdate,
    PublishOutcome,
    progress_from_fields,
)
from cache.keys import shard_of
from jobs.client import as_update, describe, drain_job_id, job_record
from jobs.deadletter import payload_text
from jobs.errors import InvalidPayloadError, JobError
from jobs.serializer import deserialize

VALID: dict[str, Any] = {"job_id": "dl-1", "user_id": "u1", "status": "downloading", "seq": 3}


def test_valid_update_and_defaults() -> None:
    update = ProgressUpdate.model_validate(VALID)
    assert update.bytes_done == 0 and update.bytes_total == 0
    assert update.emitted_at_ms is None and update.error is None
    assert ProgressUpdate.model_validate_json(update.model_dump_json()) == update


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"status": "exploded"}, "status"),
        ({"seq": "3"}, "seq"),  # strings are not numbers on the wire
        ({"seq": True}, "seq"),
        ({"seq": 1.5}, "seq"),
        ({"seq": -1}, "seq"),
        ({"seq": MAX_INT + 1}, "seq"),
        ({"bytes_done": -5}, "bytes_done"),
        ({"job_id": "dl:1"}, "job_id"),  # would break out of its key
        ({"job_id": "dl*"}, "job_id"),  # would act as a SCAN pattern
        ({"user_id": ""}, "user_id"),
        ({"colour": "red"}, "colour"),  # unknown fields are rejected, not ignored
        ({"error": "x" * 2001}, "error"),
    ],
)
def test_invalid_updates_name_the_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        ProgressUpdate.model_validate({**VALID, **change})
    assert field in describe(info.value)


def test_missing_fields_and_describe_is_one_line() -> None:
    with pytest.raises(ValidationError) as info:
        ProgressUpdate.model_validate({"job_id": "dl-1"})
    text = describe(info.value)
    assert "\n" not in text and "user_id: Field required" in text and "seq" in text
    with pytest.raises(ValidationError) as many:
        ProgressUpdate.model_validate({f"x{i}": i for i in range(9)})
    assert "more" in describe(many.value, limit=3)


def test_as_update_raises_job_error() -> None:
    assert as_update(VALID).seq == 3
    with pytest.raises(InvalidPayloadError, match="status") as info:
        as_update({**VALID, "status": "nope"})
    assert isinstance(info.value, JobError) and isinstance(info.value, ValueError)


def test_status_and_outcome_flags() -> None:
    assert {s for s in DownloadStatus if s.terminal} == {"completed", "failed", "cancelled"}
    assert [int(o) for o in ApplyOutcome] == [0, 1, 2, 3, 4, 5, 6]  # the script's return codes
    # ...and CORRUPT (6), its BADKEY error reply; PublishOutcome.CORRUPT (5) likewise
    assert int(ApplyOutcome.CORRUPT) == 6 and int(PublishOutcome.CORRUPT) == 5
    assert PublishOutcome.SCHEDULED.needs_enqueue and PublishOutcome.RESCHEDULED.needs_enqueue
    assert not PublishOutcome.COALESCED.needs_enqueue


def test_progress_from_hash_and_event_fields() -> None:
    fields = {
        b"user": b"u1",
        b"status": b"downloading",
        b"done": b"2550",
        b"total": b"10000",
        b"pct": b"2550",
        b"speed": b"1250000",
        b"eta": b"6",
        b"seq": b"9",
        b"updated": b"1700000000000",
        b"error": b"",
    }
    got = progress_from_fields(fields, "dl-1")
    assert got is not None
    assert (got.progress_percent, got.speed_mbps, got.eta_seconds, got.error) == (
        25.5,
        10.0,
        6,
        None,
    )
    assert got.updated_at.timestamp() == 1_700_000_000
    event = progress_from_fields({"job": "dl-2", "status": "queued", "eta": "-1"})
    assert event is not None and event.job_id == "dl-2" and event.eta_seconds is None
    assert progress_from_fields({}, "dl-1") is None
    assert progress_from_fields({"status": "weird"}, "dl-1") is None


def test_speed_mbps_is_the_compatibility_view() -> None:
    p = DownloadProgress(
        job_id="a",
        user_id="b",
        status="downloading",
        speed=125_000,
        updated_at="2024-01-01T00:00:00Z",
    )
    assert p.speed_mbps == 1.0 and p.model_dump()["speed_mbps"] == 1.0


def test_shard_of_is_crc32_and_documented_example_holds() -> None:
    assert shard_of("dl-1", 16) == 9  # docs/wire-format.md and cache/keys.py say so
    for job in ("a", "dl-42", "ünïcode", "x" * 128):
        assert shard_of(job, 16) == zlib.crc32(job.encode()) % 16
    assert {shard_of(f"dl-{i}", 16) for i in range(500)} == set(range(16))
    with pytest.raises(ValueError, match="shards"):
        shard_of("a", 0)


def test_member_round_trip() -> None:
    assert parse_member(member("dl-1", "u.1@x")) == ("dl-1", "u.1@x")
    assert parse_member(b"dl-1:u1") == ("dl-1", "u1")


def test_job_record_is_arq_json() -> None:
    record = job_record("update_progress", [VALID], 1700000000000)
    assert json.loads(record) == {
        "t": None,
        "f": "update_progress",
        "a": [VALID],
        "k": {},
        "et": 1700000000000,
    }
    function, args, kwargs, tries, et = deserialize_job_raw(record, deserializer=deserialize)
    assert (function, list(args), kwargs) == ("update_progress", [VALID], {})
    assert tries is None and et == 1700000000000


def test_drain_ids_are_fresh_and_name_their_shard() -> None:
    ids = {drain_job_id(3) for _ in range(100)}
    assert len(ids) == 100 and all(i.startswith("progress-drain:3:") for i in ids)


def test_dead_letter_payload_text() -> None:
    assert payload_text({"a": 1}, 100) == ('{"a":1}', False)
    text, cut = payload_text({"a": "x" * 500}, 64)
    assert cut and len(text) == 64
    assert payload_text({1, 2}, 100)[0].startswith('"{')  # not JSON: its repr, quoted
