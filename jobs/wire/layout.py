"""Queue key layouts: ARQ's own keys, or one logical queue sharded over hashtags.

``QueueLayout.arq(name)`` is ARQ's layout: the queue sorted set is ``name`` and every per-job
key has ARQ's global prefix (``arq:job:<id>``, ``arq:in-progress:<id>``, ``arq:retry:<id>``,
``arq:result:<id>``, the abort set ``arq:abort``). Plain ``arq`` producers, ARQ's CLI and ARQ's
``Job`` API work on it. Its keys share no hashtag: it needs one instance (not a cluster), and a
batch script over it is a multi-shard transaction on Dragonfly.

``QueueLayout.sharded(name, n)`` splits the queue into ``n`` shards. Every key of shard ``i``
starts with the shard's hashtag ``{<name>:<i>}``::

    {<name>:<i>}:queue              sorted set of job ids, scored by due time (ms)
    {<name>:<i>}:abort              sorted set of ids to abort (ARQ's ``arq:abort``)
    {<name>:<i>}:job:<id>           the job record (ARQ's JSON record, unchanged)
    {<name>:<i>}:in-progress:<id>   the lease of the run that holds the job
    {<name>:<i>}:retry:<id>         the try counter
    {<name>:<i>}:result:<id>        the result record

A job's shard is a pure function of its id, ``shard_of(id, n)`` = CRC-32 (IEEE, as zlib) of the
id's UTF-8 bytes mod ``n`` (``cache.keys.shard_of``, shared with the download shards), so
de-duplication by id, status and result lookups and aborts need no directory, and every script
the engine runs on a shard touches one hashtag: one thread and one hop on Dragonfly, one slot on
a Redis Cluster. Test vectors: tests/unit/test_queue_layout.py and docs/wire-format.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from cache.keys import escape_glob, shard_of, validate_name

LayoutKind = Literal["arq", "sharded"]
KeyKind = Literal["job", "in-progress", "retry", "result"]
"""The per-job keys a SCAN pattern can match (``QueueLayout.pattern``)."""
MAX_SHARDS = 1024

ARQ_JOB_PREFIX = "arq:job:"
ARQ_IN_PROGRESS_PREFIX = "arq:in-progress:"
ARQ_RETRY_PREFIX = "arq:retry:"
ARQ_RESULT_PREFIX = "arq:result:"
ARQ_ABORT_SET = "arq:abort"
DEFAULT_QUEUE_NAME = "arq:queue"
JOB_EXPIRY_EXTRA_MS = 86_400_000
"""A job record expires this long (one day) after it is due, as ARQ writes it."""
"""ARQ 0.28's key names and numbers (``arq.constants``); a test checks them against the pinned
ARQ. They are written here so producers need no ARQ (the base install has none)."""


@dataclass(frozen=True, slots=True)
class QueueShard:
    """The keys of one shard of a queue (the whole queue in ARQ's layout)."""

    index: int
    queue: str
    """Sorted set of job ids, scored by the time (ms since the epoch) they may start."""
    abort: str
    """Sorted set of job ids to abort (``Job.abort()``), scored by the request time (ms)."""
    job_prefix: str
    in_progress_prefix: str
    retry_prefix: str
    result_prefix: str
    hashtag: str | None
    """``{<name>:<i>}`` in the sharded layout; None in ARQ's (its keys share no hashtag)."""

    def job(self, job_id: str) -> str:
        return self.job_prefix + job_id

    def in_progress(self, job_id: str) -> str:
        return self.in_progress_prefix + job_id

    def retry(self, job_id: str) -> str:
        return self.retry_prefix + job_id

    def result(self, job_id: str) -> str:
        return self.result_prefix + job_id

    def job_id_of(self, key: str, prefix: str) -> str | None:
        """The job id of a per-job ``key`` with ``prefix`` (one of this shard's), else None."""
        return key[len(prefix) :] if key.startswith(prefix) else None

    def prefix(self, kind: KeyKind) -> str:
        """The prefix of this shard's per-job keys of ``kind``."""
        return {
            "job": self.job_prefix,
            "in-progress": self.in_progress_prefix,
            "retry": self.retry_prefix,
            "result": self.result_prefix,
        }[kind]


@dataclass(frozen=True, slots=True)
class QueueLayout:
    """Where one queue's keys are: its kind, its name and its shards (one for ARQ's layout)."""

    kind: LayoutKind
    name: str
    shards: tuple[QueueShard, ...]

    @classmethod
    def arq(cls, name: str = DEFAULT_QUEUE_NAME) -> QueueLayout:
        validate_name(name, "queue name")
        shard = QueueShard(
            index=0,
            queue=name,
            abort=ARQ_ABORT_SET,
            job_prefix=ARQ_JOB_PREFIX,
            in_progress_prefix=ARQ_IN_PROGRESS_PREFIX,
            retry_prefix=ARQ_RETRY_PREFIX,
            result_prefix=ARQ_RESULT_PREFIX,
            hashtag=None,
        )
        return cls("arq", name, (shard,))

    @classmethod
    def sharded(cls, name: str, shards: int) -> QueueLayout:
        validate_name(name, "queue name")
        if isinstance(shards, bool) or not isinstance(shards, int):
            raise TypeError(f"shards must be an integer, got {type(shards).__name__}")
        if not 1 <= shards <= MAX_SHARDS:
            raise ValueError(f"shards must be in [1, {MAX_SHARDS}], got {shards}")
        return cls("sharded", name, tuple(_sharded_shard(name, i) for i in range(shards)))

    @classmethod
    def of(cls, kind: LayoutKind, name: str, shards: int) -> QueueLayout:
        """The layout ``queue.layout`` / ``queue.name`` / ``queue.shards`` describe."""
        return cls.sharded(name, shards) if kind == "sharded" else cls.arq(name)

    @property
    def count(self) -> int:
        return len(self.shards)

    @property
    def paused_key(self) -> str:
        """``<name>:paused``: while it exists, workers claim no job of this queue (the
        dashboard's and ``seen-worker queue pause``'s switch; one key for every shard)."""
        return f"{self.name}:paused"

    def shard_index(self, job_id: str) -> int:
        """The shard of ``job_id``: 0 in ARQ's layout, else CRC-32 of its UTF-8 bytes mod n."""
        return 0 if len(self.shards) == 1 else shard_of(job_id, len(self.shards))

    def for_job(self, job_id: str) -> QueueShard:
        """The shard holding every key of ``job_id``."""
        return self.shards[self.shard_index(job_id)]

    def pattern(self, kind: KeyKind) -> str:
        """A SCAN pattern (glob-escaped) matching the per-job keys of ``kind`` of every shard:
        ``arq:result:*``, or ``{<name>:*}:result:*`` (one walk for all shards)."""
        if self.kind == "arq":
            return escape_glob(self.shards[0].prefix(kind)) + "*"
        return escape_glob("{" + self.name + ":") + "*" + escape_glob("}:" + kind + ":") + "*"

    def job_of(self, key: str, kind: KeyKind) -> tuple[QueueShard, str] | None:
        """(shard, job id) of a per-job key of ``kind`` that ``pattern`` matched; None for a
        key that only looks like one (another queue's, a shard out of range, no id)."""
        if self.kind == "arq":
            shard = self.shards[0]
        else:
            head = "{" + self.name + ":"
            end = key.find("}", len(head))
            index = key[len(head) : end] if key.startswith(head) and end > 0 else ""
            if not index.isdigit() or int(index) >= self.count:
                return None
            shard = self.shards[int(index)]
        job_id = shard.job_id_of(key, shard.prefix(kind))
        if not job_id or self.shard_index(job_id) != shard.index:
            return None
        return shard, job_id

    def describe(self) -> str:
        """One line for logs and ``seen-worker check``."""
        if self.kind == "arq":
            return f"arq layout, queue {self.name}"
        return f"sharded layout, queue {self.name}, {self.count} shards"


def _sharded_shard(name: str, index: int) -> QueueShard:
    tag = f"{{{name}:{index}}}"
    return QueueShard(
        index=index,
        queue=f"{tag}:queue",
        abort=f"{tag}:abort",
        job_prefix=f"{tag}:job:",
        in_progress_prefix=f"{tag}:in-progress:",
        retry_prefix=f"{tag}:retry:",
        result_prefix=f"{tag}:result:",
        hashtag=tag,
    )
