"""Queue key layouts: ARQ's keys unchanged, the sharded layout's keys and shard function."""

from __future__ import annotations

import arq.constants
import pytest

from cache.scripts import hashtag
from jobs.wire import layout as wire
from jobs.wire.layout import QueueLayout

# (job id, shards, shard): the shard function's test vectors, also in docs/wire-format.md
# and shared with the Go and Node producers (CRC-32/IEEE of the UTF-8 bytes, mod shards).
SHARD_VECTORS = [
    ("dl-1", 16, 9),
    ("job-1", 8, 7),
    ("job-1", 16, 15),
    ("ping", 8, 5),
    ("3f2a9c", 16, 8),
    ("cleanup_stale_progress:1700000000000", 8, 1),
    ("progress-drain:3:ab12", 4, 2),
    ("a", 8, 3),
    ("é-1", 8, 6),
    ("anything", 1, 0),
]


def test_arq_layout_is_arqs_own_keys() -> None:
    assert arq.constants.job_key_prefix == wire.ARQ_JOB_PREFIX
    assert arq.constants.in_progress_key_prefix == wire.ARQ_IN_PROGRESS_PREFIX
    assert arq.constants.retry_key_prefix == wire.ARQ_RETRY_PREFIX
    assert arq.constants.result_key_prefix == wire.ARQ_RESULT_PREFIX
    assert arq.constants.abort_jobs_ss == wire.ARQ_ABORT_SET
    layout = QueueLayout.arq("arq:queue")
    assert layout.count == 1
    shard = layout.for_job("x1")
    assert (shard.queue, shard.abort) == ("arq:queue", "arq:abort")
    assert shard.job("x1") == "arq:job:x1"
    assert shard.in_progress("x1") == "arq:in-progress:x1"
    assert shard.retry("x1") == "arq:retry:x1"
    assert shard.result("x1") == "arq:result:x1"
    assert shard.hashtag is None


@pytest.mark.parametrize(("job_id", "shards", "expected"), SHARD_VECTORS)
def test_shard_vectors(job_id: str, shards: int, expected: int) -> None:
    assert QueueLayout.sharded("q", shards).shard_index(job_id) == expected


def test_sharded_keys_share_their_shards_hashtag() -> None:
    layout = QueueLayout.sharded("arq:queue", 8)
    shard = layout.for_job("job-1")
    assert shard.index == 7
    assert shard.queue == "{arq:queue:7}:queue"
    assert shard.abort == "{arq:queue:7}:abort"
    assert shard.job("job-1") == "{arq:queue:7}:job:job-1"
    assert shard.in_progress("job-1") == "{arq:queue:7}:in-progress:job-1"
    assert shard.retry("job-1") == "{arq:queue:7}:retry:job-1"
    assert shard.result("job-1") == "{arq:queue:7}:result:job-1"
    keys = [shard.queue, shard.abort, shard.job("a{b}"), shard.result("job-1")]
    assert {hashtag(k) for k in keys} == {"arq:queue:7"}
    assert len({s.hashtag for s in layout.shards}) == 8


@pytest.mark.parametrize("shards", [0, -1, 1025, True, 2.0])
def test_bad_shard_counts_refused(shards: object) -> None:
    with pytest.raises((ValueError, TypeError)):
        QueueLayout.sharded("q", shards)  # type: ignore[arg-type]


def test_queue_name_is_checked() -> None:
    with pytest.raises(ValueError, match="queue name"):
        QueueLayout.sharded("a{b}", 2)
    with pytest.raises(ValueError, match="queue name"):
        QueueLayout.arq("a b")
