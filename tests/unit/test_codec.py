"""The stored JSON form: compressed above the threshold, both forms readable."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from cache import codec
from cache.errors import SerializationError


class Item(BaseModel):
    id: str
    n: int


def test_small_values_stay_plain() -> None:
    assert codec.encode({"a": 1}, 4096) == b'{"a":1}'


def test_large_values_compress_and_round_trip() -> None:
    value = [{"id": f"item-{i}", "title": "The same words again"} for i in range(300)]
    stored = codec.encode(value, 1024)
    assert stored.startswith(codec.COMPRESSED_MARKER)
    assert len(stored) < len(codec.dumps(value)) / 4
    assert codec.decode(stored) == value


def test_threshold_zero_never_compresses() -> None:
    value = ["x" * 10_000]
    assert not codec.encode(value, 0).startswith(codec.COMPRESSED_MARKER)


def test_models() -> None:
    stored = codec.encode(Item(id="a", n=1))
    assert codec.decode(stored, Item) == Item(id="a", n=1)
    with pytest.raises(SerializationError):
        codec.decode(b'{"id": 1}', Item)


def test_corrupt_and_non_json() -> None:
    with pytest.raises(SerializationError):
        codec.decode(codec.COMPRESSED_MARKER + b"garbage")
    with pytest.raises(SerializationError):
        codec.decode(b"{nope")
    with pytest.raises(SerializationError):
        codec.encode({1, 2})


def test_as_text_is_the_one_decoder_of_replies() -> None:
    assert codec.as_text(b"job-1") == "job-1"
    assert codec.as_text("job-1") == "job-1"
    assert codec.as_text(None) is None
    assert codec.as_text("é".encode()) == "é"
    assert codec.as_text(b"bad\xff") == "bad\ufffd"  # replaced, never raised
