"""Moving one queue between its key layouts (ARQ's and the sharded one) while workers run.

A pass pages through the source layout's queues (``ZRANGE`` by rank, ``batch`` ids a page, no
``KEYS``) and moves each page with ``queue_move.lua``: per id, atomically, only while the id is
in the source queue and no lease (``in-progress`` key) exists for it in the source layout, its
record (with its remaining PTTL), try counter (with its TTL), due time and abort mark go to the
target layout's keys, then the source's are deleted. A job a worker holds stays where it is: it
finishes there (its result is moved by a later pass) or, handed back or retried, is moved by a
later pass. Then the source's result records are found with ``SCAN`` (bounded pages) and moved
the same way, keeping their TTL. An id the target already has (a job, a lease, a queue entry or
a result) is never overwritten: it is reported, and dropped from the source only when asked
(``drop_duplicates``: ARQ's rule is one job per id, so the target's copy stands).

Why nothing is lost or run twice: the lease check and the move are one script, and a worker's
claim (``queue_claim.lua``) and finish (``queue_finish.lua``) are scripts on the same instance,
so they are serialised: an id is either moved before any claim (the old workers' claim then
finds it gone) or claimed first (then it is held and not moved). A moved id is in exactly one
layout at every moment.

Both layouts must be on **one instance**: the script's keys span two hashtag groups (ARQ's keys
have none) and there is no atomic move between two stores (a copy, then a delete, could run a
job in both or lose it between the two). ARQ's layout needs one instance anyway. Plain ARQ
workers (``arq worker.settings.WorkerSettings``) must not run on the source during a move:
their claim watches the lease key only, not the queue entry, so a job moved under their claim
would run there as an expired job (docs/operations.md, "Moving a queue between layouts").
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from cache.errors import CacheResponseError, translate_errors
from cache.keys import escape_glob
from cache.scripts import ScriptArg, ScriptCall, ScriptRunner
from jobs.errors import JobError
from jobs.wire.layout import MAX_SHARDS, QueueLayout, QueueShard

MOVE = "queue_move"
DEFAULT_BATCH = 200
MAX_BATCH = 1000
SCAN_COUNT = 500
EXAMPLES = 20
"""Ids kept per kind of problem in a report (the counts are complete)."""

MOVED, HELD, DUPLICATE, DROPPED, FAILED = 1, 2, 3, 4, 5
"""Statuses ``queue_move.lua`` returns per id (0: nothing to do)."""


class QueueMoveError(JobError):
    """The move cannot start: the layouts do not fit, or the sharded side's shard count is
    not the one its keys use."""


@dataclass(slots=True)
class Tally:
    """How many ids ended one way, with the first few (and why)."""

    count: int = 0
    examples: list[tuple[str, str]] = field(default_factory=list)

    def add(self, job_id: str, reason: str = "") -> None:
        self.count += 1
        if len(self.examples) < EXAMPLES:
            self.examples.append((job_id, reason))

    def as_dict(self) -> dict[str, Any]:
        return {"count": self.count, "examples": [list(e) for e in self.examples]}


@dataclass(slots=True)
class PassReport:
    """What one pass did."""

    moved: int = 0
    """Jobs moved (record, try counter, due time, abort mark)."""
    results_moved: int = 0
    held: Tally = field(default_factory=Tally)
    """Jobs a worker held (left in place: they finish there or are moved by a later pass)."""
    duplicates: Tally = field(default_factory=Tally)
    """Ids (jobs or results) the target already has, left in the source."""
    dropped: Tally = field(default_factory=Tally)
    """Source copies of ids the target already has, deleted (``drop_duplicates``)."""
    failed: Tally = field(default_factory=Tally)
    """Ids whose keys are unusable (the key is named), or whose call the store refused."""
    left: int = 0
    """Jobs still in the source queues after the jobs were moved."""
    results_left: int = 0
    """This queue's results still in the source after the pass (duplicates, failures)."""
    other_results: int = 0
    """Result records under ARQ's shared ``arq:result:`` prefix of another queue (left)."""
    stayed: int = 0
    """Jobs left in the source queue for good reason (duplicates, failures)."""
    unreadable: int = 0
    """Source queues that are not sorted sets (in ``failed``, named): nothing of them moved."""

    @property
    def empty(self) -> bool:
        """Nothing of this queue is left in the source layout."""
        return self.left == 0 and self.results_left == 0 and self.unreadable == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "moved": self.moved,
            "results_moved": self.results_moved,
            "held": self.held.as_dict(),
            "duplicates": self.duplicates.as_dict(),
            "dropped": self.dropped.as_dict(),
            "failed": self.failed.as_dict(),
            "left": self.left,
            "results_left": self.results_left,
            "other_results": self.other_results,
        }


class QueueMover:
    """Moves one queue's jobs and results from ``source`` to ``target`` (the same queue name,
    one layout ARQ's and the other sharded) on the store ``client`` talks to (one instance)."""

    def __init__(
        self,
        client: Redis,
        source: QueueLayout,
        target: QueueLayout,
        *,
        batch: int = DEFAULT_BATCH,
        drop_duplicates: bool = False,
        scan_count: int = SCAN_COUNT,
        scripts: ScriptRunner | None = None,
    ) -> None:
        if {source.kind, target.kind} != {"arq", "sharded"}:
            raise QueueMoveError(
                f"a move goes between ARQ's layout and the sharded one, not {source.kind} to "
                f"{target.kind}"
            )
        if source.name != target.name:
            raise QueueMoveError(
                f"both layouts must name one queue: {source.name!r}, {target.name!r}"
            )
        if not 1 <= batch <= MAX_BATCH:
            raise QueueMoveError(f"batch must be in [1, {MAX_BATCH}], got {batch}")
        self.client = client
        self.source = source
        self.target = target
        self.batch = batch
        self.drop_duplicates = drop_duplicates
        self.scan_count = scan_count
        self.scripts = scripts if scripts is not None else ScriptRunner(client)
        self.sharded = source if source.kind == "sharded" else target

    # -- before the first pass -----------------------------------------------------------
    async def check_shards(self) -> None:
        """Refuse a shard count below the one the sharded layout's keys use: a queue of a
        shard beyond it (``{<name>:<i>}:queue``, i >= n) would never be read (one ``EXISTS``
        over every possible shard, ``jobs.wire.layout.MAX_SHARDS``)."""
        n = self.sharded.count
        beyond = [s.queue for s in QueueLayout.sharded(self.sharded.name, MAX_SHARDS).shards[n:]]
        if not beyond:
            return
        with translate_errors(beyond[0], operation="check shards"):
            found = int(await self.client.exists(*beyond))
            if not found:
                return
            async with self.client.pipeline(transaction=False) as pipe:
                for key in beyond:
                    pipe.exists(key)
                flags = await pipe.execute()
        first = next(key for key, flag in zip(beyond, flags, strict=True) if flag)
        raise QueueMoveError(
            f"{first} holds jobs but the sharded layout was given {n} shards: use the "
            "queue.shards of the workers of that layout (--shards)"
        )

    # -- one pass ------------------------------------------------------------------------
    async def run_pass(self) -> PassReport:
        """Move every job and result of the source that can be moved now."""
        report = PassReport()
        for shard in self.source.shards:
            await self._move_queue(shard, report)
        report.left = await self._queued()
        await self._move_results(report)
        return report

    async def until_empty(
        self,
        within_s: float,
        *,
        pause_s: float = 0.5,
        on_pass: Callable[[int, PassReport], Awaitable[None] | None] | None = None,
    ) -> list[PassReport]:
        """Passes until the source holds nothing of this queue, or ``within_s`` has passed,
        or nothing can change any more (a pass moved nothing and no worker holds a job of
        the source: what is left are duplicates or failures). Every pass is reported."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        reports: list[PassReport] = []
        while True:
            report = await self.run_pass()
            reports.append(report)
            if on_pass is not None:
                shown = on_pass(len(reports), report)
                if shown is not None:
                    await shown
            progress = report.moved + report.results_moved + report.dropped.count
            # nothing moved, no worker holds a job, and every job left stayed for good reason
            stuck = not progress and not report.held.count and report.left <= report.stayed
            left = deadline - loop.time()
            if report.empty or stuck or left <= 0:
                return reports
            await asyncio.sleep(min(pause_s, left))

    # -- jobs ----------------------------------------------------------------------------
    async def _move_queue(self, shard: QueueShard, report: PassReport) -> None:
        """Page through one source queue by rank; ids left in place (held, duplicates,
        failures) move the next page's start on. At most the queue's length at the start
        (plus a page) is looked at: what producers add meanwhile waits for the next pass."""
        try:
            with translate_errors(shard.queue, operation="move: queue length"):
                budget = int(await self.client.zcard(shard.queue)) + self.batch
        except CacheResponseError as exc:  # not a sorted set: this shard alone is skipped
            report.failed.add(shard.queue, str(exc))
            report.unreadable += 1
            return
        offset = seen = 0
        while seen < budget:
            with translate_errors(shard.queue, operation="move: read the queue"):
                raw = await self.client.zrange(shard.queue, offset, offset + self.batch - 1)
            if not raw:
                return
            seen += len(raw)
            ids: list[str] = []
            for item in raw:
                job_id = _decode(item)
                if job_id is None:
                    report.failed.add(repr(item), f"{shard.queue} holds an id that is not UTF-8")
                    offset += 1
                else:
                    ids.append(job_id)
            offset += await self._move_ids(shard, ids, report, results=False)

    # -- results -------------------------------------------------------------------------
    async def _move_results(self, report: PassReport) -> None:
        """SCAN the source's result records (bounded pages) and move this queue's."""
        pattern, parse = self._result_match()
        cursor: int = 0
        while True:
            with translate_errors(pattern, operation="move: scan results"):
                cursor, keys = await self.client.scan(cursor, match=pattern, count=self.scan_count)
            found: dict[int, list[str]] = {}
            for key in keys:
                parsed = parse(_decode(key) or "")
                if parsed is not None:
                    found.setdefault(parsed[0].index, []).append(parsed[1])
            for index, ids in found.items():
                shard = self.source.shards[index]
                if self.source.kind == "arq":
                    ids = await self._this_queues(shard, ids, report)
                for first in range(0, len(ids), self.batch):
                    page = ids[first : first + self.batch]
                    await self._move_ids(shard, page, report, results=True)
            if cursor == 0:
                return

    def _result_match(self) -> tuple[str, Callable[[str], tuple[QueueShard, str] | None]]:
        """The SCAN pattern of the source's result keys, and the parser of a key it returns
        (its shard and id, or None for a key of another queue)."""
        if self.source.kind == "arq":
            shard = self.source.shards[0]
            prefix = shard.result_prefix

            def arq_key(key: str) -> tuple[QueueShard, str] | None:
                job_id = shard.job_id_of(key, prefix)
                return (shard, job_id) if job_id else None

            return escape_glob(prefix) + "*", arq_key
        name = self.source.name
        shape = re.compile(r"\{" + re.escape(name) + r":(\d+)\}:result:(.+)", re.S)

        def sharded_key(key: str) -> tuple[QueueShard, str] | None:
            match = shape.fullmatch(key)
            if match is None:
                return None
            index = int(match.group(1))
            if index >= self.source.count or str(index) != match.group(1):
                return None
            return self.source.shards[index], match.group(2)

        return "{" + escape_glob(name) + ":*}:result:*", sharded_key

    async def _this_queues(
        self, shard: QueueShard, ids: list[str], report: PassReport
    ) -> list[str]:
        """The ids among ``ids`` whose result record names this queue (``"q"``): ARQ's
        ``arq:result:`` prefix is shared by every ARQ queue on the instance. A key there that
        is not a JSON result naming a queue (another type, pickled by plain ARQ) names no queue:
        it is counted in ``other_results`` and left alone."""
        keys = [shard.result(i) for i in ids]
        with translate_errors(keys[0], operation="move: read results"):
            values = await self.client.mget(keys)
            missing = [k for k, v in zip(keys, values, strict=True) if v is None]
            if missing:  # expired since the scan, or not a string
                async with self.client.pipeline(transaction=False) as pipe:
                    for key in missing:
                        pipe.exists(key)
                    report.other_results += sum(await pipe.execute())
        mine = []
        for job_id, value in zip(ids, values, strict=True):
            if value is None:
                continue
            if _queue_of(value) == self.source.name:
                mine.append(job_id)
            else:
                report.other_results += 1
        return mine

    # -- the script ------------------------------------------------------------------------
    async def _move_ids(
        self, shard: QueueShard, ids: Sequence[str], report: PassReport, *, results: bool
    ) -> int:
        """Move ``ids`` of source ``shard``: one script call per target shard, one round
        trip. Returns how many of them were left in the source queue."""
        if not ids:
            return 0
        groups: dict[int, list[str]] = {}
        for job_id in ids:
            groups.setdefault(self.target.shard_index(job_id), []).append(job_id)
        calls = [self._call(shard, self.target.shards[t], group) for t, group in groups.items()]
        replies = await self.scripts.run_many(MOVE, calls, single_hashtag=False, return_errors=True)
        left = 0
        for group, reply in zip(groups.values(), replies, strict=True):
            if isinstance(reply, CacheResponseError):
                for job_id in group:
                    report.failed.add(job_id, str(reply))
                left += len(group)
                if results:
                    report.results_left += len(group)
                else:
                    report.stayed += len(group)
                continue
            for i, job_id in enumerate(group):
                job, result, problem = reply[3 * i : 3 * i + 3]
                left += self._count(report, job_id, int(job), int(result), _text(problem))
        return left

    def _call(self, source: QueueShard, target: QueueShard, ids: Sequence[str]) -> ScriptCall:
        keys = [source.queue, source.abort, target.queue, target.abort]
        args: list[ScriptArg] = [1 if self.drop_duplicates else 0]
        for job_id in ids:
            keys += (
                source.job(job_id),
                source.in_progress(job_id),
                source.retry(job_id),
                source.result(job_id),
                target.job(job_id),
                target.in_progress(job_id),
                target.retry(job_id),
                target.result(job_id),
            )
            args.append(job_id)
        return keys, args

    @staticmethod
    def _count(report: PassReport, job_id: str, job: int, result: int, problem: str) -> int:
        """Add one id's statuses to ``report``; 1 when its job stays in the source queue."""
        if FAILED in (job, result):  # nothing of this id changed
            report.failed.add(job_id, problem)
            report.results_left += result == FAILED
            report.stayed += job == FAILED
            return int(job == FAILED)
        if job == MOVED:
            report.moved += 1
        elif job == HELD:
            report.held.add(job_id)
        elif job == DUPLICATE:
            report.duplicates.add(job_id, problem)
        elif job == DROPPED:
            report.dropped.add(job_id, problem)
        if result == MOVED:
            report.results_moved += 1
        elif result == DUPLICATE:
            report.results_left += 1
            if job != DUPLICATE:
                report.duplicates.add(job_id, problem)
        elif result == DROPPED and job != DROPPED:
            report.dropped.add(job_id, problem)
        report.stayed += job == DUPLICATE
        return 1 if job in (HELD, DUPLICATE) else 0

    async def _queued(self) -> int:
        """Jobs in the source queues now (a queue that is not a sorted set counts none: it
        was reported as unreadable)."""
        with translate_errors(self.source.shards[0].queue, operation="move: queue lengths"):
            async with self.client.pipeline(transaction=False) as pipe:
                for shard in self.source.shards:
                    pipe.zcard(shard.queue)
                sizes = await pipe.execute(raise_on_error=False)
        return sum(int(s) for s in sizes if isinstance(s, int))


def _decode(value: bytes | str) -> str | None:
    if isinstance(value, str):
        return value
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _queue_of(value: bytes | str) -> str | None:
    """The ``q`` of a JSON result record, else None (not JSON, not an object, no ``q``)."""
    try:
        data = json.loads(value)
    except (ValueError, UnicodeDecodeError):
        return None
    queue = data.get("q") if isinstance(data, dict) else None
    return queue if isinstance(queue, str) else None
