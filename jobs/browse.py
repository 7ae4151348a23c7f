"""Jobs by state, a bounded page at a time, on either queue layout (the job browser and
``seen-worker jobs list``).

No request walks the whole store: each page looks at a bounded number of entries or keys and
says how many (``JobPage.examined``), with a cursor to go on from.

- ``waiting`` (due, never tried), ``deferred`` (due later, never tried) and ``retrying`` (tried
  before, back in the queue) page through every shard's queue (sorted set) by due time: each
  shard gives its next ``limit`` entries from the cursor, the entries are merged by (score,
  shard) and the first ``limit`` examined; each is then classified in one pipelined round trip
  (its lease, try counter and the head of its record, ``RECORD_PREVIEW`` bytes, for the
  function's name). The cursor is the score reached and, per shard, how many entries at
  exactly that score were already examined, so equal scores (a batch enqueued in one
  millisecond) page correctly and jobs taken from the front of the queue meanwhile shift
  nothing. Running jobs are still in the queue (ARQ keeps them there until they finish): they
  are skipped here and listed under ``running``.
- ``running``: a bounded SCAN of the job leases (``<in-progress prefix>*``, every shard in one
  walk, ``cache.scanpage``); ``complete`` and ``failed``: the same over the results, each read
  to tell success from failure. A SCAN page may hold fewer rows than asked, or none, and still
  have a next page.
- ``dead``: the dead-letter list (newest first), by offset.

A filter on the function name keeps the examined entries of that function only. An entry whose
keys cannot be read (a record that is not JSON, a key of another type) is listed with what
could be read and counted in the caller's ``Unreadable`` (kind ``job``, logged with its key); it
never fails the page. A shard's queue that is not a sorted set is counted and skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from cache.clock import wall_ms
from cache.codec import as_text
from cache.errors import translate_errors
from cache.manager import CacheManager
from cache.scanpage import scan_page
from cache.unreadable import Unreadable
from jobs.deadletter import read_stored
from jobs.inspect import lease_holder, result_view
from jobs.serializer import InvalidJobRecordError, deserialize, parse_record
from jobs.wire.layout import KeyKind, QueueLayout, QueueShard

LIST_STATES = ("waiting", "deferred", "retrying", "running", "complete", "failed", "dead")
QUEUE_STATES = ("waiting", "deferred", "retrying")
KIND = "job"
"""The ``Unreadable`` kind of a job key that cannot be read."""
RECORD_PREVIEW = 4096
"""Bytes of a job record read to name its function (``"f"`` comes second in every record)."""
_FUNCTION = re.compile(rb'"f"\s*:\s*"((?:[^"\\]|\\.){1,200})"')


class CursorError(ValueError):
    """A cursor that this state cannot continue from (another state's, or garbled)."""


@dataclass(frozen=True)
class JobRow:
    """One job of a list page."""

    job_id: str
    state: str
    shard: int | None
    """Its queue shard (None for a dead letter)."""
    function: str | None = None
    score_ms: int | None = None
    """When it is due (queue states)."""
    enqueue_ms: int | None = None
    tries: int | None = None
    holder: str | None = None
    """The worker whose run holds it (``running``)."""
    ttl_ms: int | None = None
    """Time left on its lease (``running``) or its kept result (``complete``, ``failed``)."""
    finish_ms: int | None = None
    error: str | None = None
    """A failure's error type; a dead letter's reason."""


@dataclass(frozen=True)
class JobPage:
    state: str
    rows: list[JobRow]
    examined: int
    """Queue entries, keys or dead letters this page looked at."""
    unit: str
    """What ``examined`` counts: ``queue entries``, ``keys`` or ``dead letters``."""
    cursor: str | None
    """Where the next page starts; None: this was the last."""
    function: str | None = None
    total: int | None = None
    """Jobs in this state when it is known cheaply (dead letters: the list's length)."""
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class QueueCursor:
    """The position of a queue page: the score reached, and per shard the entries at exactly
    that score already examined."""

    score: float
    skips: tuple[int, ...]

    def encode(self) -> str:
        score = int(self.score) if float(self.score).is_integer() else self.score
        return f"q{score}:" + ".".join(str(s) for s in self.skips)

    @classmethod
    def decode(cls, text: str | None, shards: int) -> QueueCursor | None:
        if not text:
            return None
        try:
            if not text.startswith("q"):
                raise ValueError(text)
            score_text, _, skips_text = text[1:].partition(":")
            skips = tuple(int(s) for s in skips_text.split("."))
            score = float(score_text)
        except ValueError:
            raise CursorError(f"not a queue cursor: {text[:40]!r}") from None
        if len(skips) != shards or any(s < 0 for s in skips) or score != score:
            raise CursorError(f"not a queue cursor for {shards} shard(s): {text[:40]!r}")
        return cls(score, skips)


def function_of(preview: bytes | str | None) -> str | None:
    """The function a (possibly cut) job record names."""
    if preview is None:
        return None
    data = preview.encode() if isinstance(preview, str) else preview
    try:
        record: Any = parse_record(data)
    except InvalidJobRecordError:
        record = None
    if isinstance(record, dict):
        name = record.get("f")
        return name if isinstance(name, str) else None
    found = _FUNCTION.search(data)
    if found is None:
        return None
    try:
        name = parse_record(b'"' + found.group(1) + b'"')
    except InvalidJobRecordError:
        return None
    return name if isinstance(name, str) else None


def _int(value: Any) -> int | None:
    if isinstance(value, bytes | str) and as_text(value).isdigit():
        return int(as_text(value))
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _window(state: str, now: int) -> tuple[float | str, float | str]:
    if state == "waiting":
        return "-inf", now
    if state == "deferred":
        return f"({now}", "+inf"
    return "-inf", "+inf"


async def _queue_page(
    client: Redis,
    layout: QueueLayout,
    state: str,
    limit: int,
    cursor: str | None,
    function: str | None,
    now: int,
    skipped: Unreadable,
) -> JobPage:
    at = QueueCursor.decode(cursor, layout.count)
    low, high = _window(state, now)
    fetched: list[tuple[float, int, int, str]] = []  # (score, shard, position, id)
    with translate_errors(layout.shards[0].queue, operation="list queue"):
        async with client.pipeline(transaction=False) as pipe:
            for shard in layout.shards:
                start, skip = low, 0
                if at is not None and (low == "-inf" or at.score >= _bound(low)):
                    start, skip = at.score, at.skips[shard.index]
                pipe.zrangebyscore(shard.queue, start, high, start=skip, num=limit, withscores=True)
            replies = await pipe.execute(raise_on_error=False)
    full = False
    for shard, reply in zip(layout.shards, replies, strict=True):
        if isinstance(reply, Exception):  # a queue key of another type: nothing to list
            skipped.skip(KIND, shard.queue, str(reply))
            continue
        full = full or len(reply) >= limit
        for position, (raw_id, score) in enumerate(reply):
            fetched.append((float(score), shard.index, position, as_text(raw_id)))
    fetched.sort()
    examined = fetched[:limit]
    more = full or len(fetched) > limit
    next_cursor = None
    if examined and more:
        last = examined[-1][0]
        skips = []
        for shard in layout.shards:
            taken = sum(1 for s, i, _, _ in examined if i == shard.index and s == last)
            before = at.skips[shard.index] if at is not None and at.score == last else 0
            skips.append(before + taken)
        next_cursor = QueueCursor(last, tuple(skips)).encode()
    rows = await _classify(client, layout, examined, state, function, skipped)
    return JobPage(state, rows, len(examined), "queue entries", next_cursor, function)


def _bound(value: float | str) -> float:
    text = str(value).lstrip("(")
    return float(text)


async def _classify(
    client: Redis,
    layout: QueueLayout,
    entries: list[tuple[float, int, int, str]],
    state: str,
    function: str | None,
    skipped: Unreadable,
) -> list[JobRow]:
    """The entries that are in ``state`` (and of ``function``), as rows."""
    if not entries:
        return []
    with translate_errors(layout.shards[0].queue, operation="classify queue entries"):
        async with client.pipeline(transaction=False) as pipe:
            for _, index, _, job_id in entries:
                shard = layout.shards[index]
                pipe.exists(shard.in_progress(job_id))
                pipe.get(shard.retry(job_id))
                pipe.getrange(shard.job(job_id), 0, RECORD_PREVIEW - 1)
            replies = await pipe.execute(raise_on_error=False)
    rows = []
    for n, (score, index, _, job_id) in enumerate(entries):
        running, tries_raw, preview = replies[3 * n : 3 * n + 3]
        if running is True or (isinstance(running, int) and running > 0):
            continue
        tries = _int(tries_raw)
        actual = "retrying" if tries else ("waiting" if state != "deferred" else "deferred")
        if state == "retrying" and actual != "retrying":
            continue
        if state != "retrying" and tries:
            continue
        name = function_of(preview if isinstance(preview, bytes | str) else None)
        if name is None and preview not in (None, "", b""):
            why = str(preview) if isinstance(preview, Exception) else "no function in its record"
            skipped.skip(KIND, layout.shards[index].job(job_id), why)
        if function is not None and name != function:
            continue
        enqueue = _enqueue_ms(preview)
        rows.append(
            JobRow(job_id, actual, index, name, round(score), enqueue, tries),
        )
    return rows


def _enqueue_ms(preview: Any) -> int | None:
    if not isinstance(preview, bytes | str):
        return None
    try:
        record = parse_record(preview if isinstance(preview, bytes) else preview.encode())
    except InvalidJobRecordError:
        return None
    if isinstance(record, dict):
        value = record.get("et")
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    return None


async def _scan_states(
    client: Redis,
    layout: QueueLayout,
    state: str,
    limit: int,
    cursor: str | None,
    function: str | None,
    count: int,
    skipped: Unreadable,
) -> JobPage:
    kind: KeyKind = "in-progress" if state == "running" else "result"
    if cursor is not None and not cursor.startswith("s"):
        raise CursorError(f"not a scan cursor: {cursor[:40]!r}")
    try:
        page = await scan_page(
            client,
            layout.pattern(kind),
            cursor[1:] if cursor else None,
            count=count,
            max_keys=max(count, limit * count),
        )
    except ValueError as exc:
        raise CursorError(str(exc)) from None
    found: list[tuple[QueueShard, str]] = []
    for key in page.keys:
        parsed = layout.job_of(key, kind)
        if parsed is not None:
            found.append(parsed)
    rows = (
        await _running_rows(client, found, function, skipped)
        if state == "running"
        else await _result_rows(client, found, state, function, skipped)
    )
    next_cursor = None if page.cursor is None else "s" + page.cursor
    return JobPage(state, rows, page.looked, "keys", next_cursor, function)


async def _running_rows(
    client: Redis, found: list[tuple[QueueShard, str]], function: str | None, skipped: Unreadable
) -> list[JobRow]:
    if not found:
        return []
    with translate_errors(found[0][0].queue, operation="read leases"):
        async with client.pipeline(transaction=False) as pipe:
            for shard, job_id in found:
                pipe.get(shard.in_progress(job_id))
                pipe.pttl(shard.in_progress(job_id))
                pipe.get(shard.retry(job_id))
                pipe.getrange(shard.job(job_id), 0, RECORD_PREVIEW - 1)
                pipe.zscore(shard.queue, job_id)
            replies = await pipe.execute(raise_on_error=False)
    rows = []
    for n, (shard, job_id) in enumerate(found):
        token, pttl, tries, preview, score = replies[5 * n : 5 * n + 5]
        if isinstance(token, Exception):
            skipped.skip(KIND, shard.in_progress(job_id), str(token))
        if not isinstance(token, bytes | str):
            continue  # finished since the SCAN, or not a string
        name = function_of(preview if isinstance(preview, bytes | str) else None)
        if function is not None and name != function:
            continue
        ttl = int(pttl) if isinstance(pttl, int) and pttl >= 0 else None
        rows.append(
            JobRow(
                job_id,
                "running",
                shard.index,
                name,
                round(score) if isinstance(score, int | float) else None,
                _enqueue_ms(preview),
                _int(tries),
                holder=lease_holder(as_text(token)),
                ttl_ms=ttl,
            )
        )
    return rows


async def _result_rows(
    client: Redis,
    found: list[tuple[QueueShard, str]],
    state: str,
    function: str | None,
    skipped: Unreadable,
) -> list[JobRow]:
    if not found:
        return []
    with translate_errors(found[0][0].queue, operation="read results"):
        async with client.pipeline(transaction=False) as pipe:
            for shard, job_id in found:
                pipe.get(shard.result(job_id))
                pipe.pttl(shard.result(job_id))
            replies = await pipe.execute(raise_on_error=False)
    rows = []
    for n, (shard, job_id) in enumerate(found):
        raw, pttl = replies[2 * n : 2 * n + 2]
        if isinstance(raw, Exception):
            skipped.skip(KIND, shard.result(job_id), str(raw))
        if not isinstance(raw, bytes | str):
            continue
        try:
            record = deserialize(raw)
        except InvalidJobRecordError as exc:
            if state == "failed":  # an unreadable result is no success: shown with why
                skipped.skip(KIND, shard.result(job_id), exc.reason)
                rows.append(JobRow(job_id, "failed", shard.index, error=exc.reason[:200]))
            continue
        ttl = int(pttl) if isinstance(pttl, int) and pttl >= 0 else None
        view = result_view(record, ttl)
        if (state == "complete") != view.success:
            continue
        if function is not None and record["f"] != function:
            continue
        rows.append(
            JobRow(
                job_id,
                state,
                shard.index,
                record["f"],
                None,
                record["et"],
                view.job_try,
                ttl_ms=ttl,
                finish_ms=view.finish_ms,
                error=view.error,
            )
        )
    return rows


async def _dead_page(
    manager: CacheManager,
    limit: int,
    cursor: str | None,
    function: str | None,
    cap: int,
    skipped: Unreadable,
) -> JobPage:
    offset = 0
    if cursor:
        if not (cursor.startswith("d") and cursor[1:].isdigit()):
            raise CursorError(f"not a dead-letter cursor: {cursor[:40]!r}")
        offset = int(cursor[1:])
    stored, total = await read_stored(manager, min(cap, offset + limit))
    window = stored[offset : offset + limit]
    for entry in window:
        if not entry.readable:
            key = f"{manager.keys.dead_letter()} entry {entry.id}"
            skipped.skip("dead_letter", key, "not a dead letter")
    rows = [
        JobRow(
            s.letter.job_id or "-",
            "dead",
            None,
            s.letter.function,
            finish_ms=s.letter.at_ms,
            tries=s.letter.job_try,
            error=s.letter.reason[:200],
        )
        for s in window
        if function is None or s.letter.function == function
    ]
    end = offset + len(window)
    next_cursor = f"d{end}" if end < min(total, cap) and window else None
    return JobPage("dead", rows, len(window), "dead letters", next_cursor, function, total)


async def list_jobs(
    queue: Redis,
    layout: QueueLayout,
    state: str,
    *,
    limit: int = 50,
    cursor: str | None = None,
    function: str | None = None,
    manager: CacheManager | None = None,
    scan_count: int = 500,
    now_ms: int | None = None,
    unreadable: Unreadable | None = None,
) -> JobPage:
    """One page of jobs in ``state`` (one of ``LIST_STATES``; module docstring). ``manager``
    (the cache store's) is needed for ``dead``; rows that could not be read are counted in
    ``unreadable``. ``CursorError`` for a cursor that is not this state's; ``ValueError`` for
    an unknown state or a limit out of [1, 1000]."""
    skipped = unreadable if unreadable is not None else Unreadable()
    if state not in LIST_STATES:
        raise ValueError(f"state must be one of {', '.join(LIST_STATES)}, got {state!r}")
    if isinstance(limit, bool) or not 1 <= limit <= 1000:
        raise ValueError(f"limit must be in [1, 1000], got {limit!r}")
    now = wall_ms() if now_ms is None else now_ms
    if state in QUEUE_STATES:
        return await _queue_page(queue, layout, state, limit, cursor, function, now, skipped)
    if state == "dead":
        if manager is None:
            raise ValueError("dead letters are read from the cache store: pass manager")
        cap = manager.config.deadletter.max_entries
        return await _dead_page(manager, limit, cursor, function, cap, skipped)
    return await _scan_states(queue, layout, state, limit, cursor, function, scan_count, skipped)
