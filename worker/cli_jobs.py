"""``seen-worker jobs ...`` and ``seen-worker queue ...``: the on-call engineer's commands.

``jobs list [--state S] [--function F] [--limit N] [--cursor C]``, ``jobs show ID [--full]``,
``jobs retry|cancel|delete ID``, ``jobs requeue LETTER_ID... [--new-id]``; ``queue pause
[--reason R]``, ``queue resume``, ``queue status``. Every one takes ``--json``. They read and
act through ``jobs.browse``, ``jobs.inspect``, ``jobs.admin``, ``jobs.requeue`` and
``jobs.queue_control`` on the configured queue layout, and every action is logged with who ran
it (``seen.cli``). Exit codes, for scripts (``EXIT_CODES``):

- 0: done (or shown, or nothing needed doing);
- 1: refused: the job is not in a state the action applies to (the message says which);
- 2: a usage or settings error (a bad id, state or cursor);
- 3: no such job (or dead letter);
- 4: the store did not answer or failed.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import socket
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Any

from redis.asyncio import Redis

from cache.client import create_client
from cache.errors import CacheError, InvalidKeyError
from cache.manager import CacheManager
from jobs.admin import ActionResult, JobAdmin, Verdict
from jobs.browse import LIST_STATES, CursorError, JobPage, list_jobs
from jobs.inspect import JobDetail, inspect_job
from jobs.queue_control import pause, pause_state, resume
from jobs.requeue import RequeueError, requeue_dead_letters
from worker.holders import Holder, worker_holders
from worker.job_modules import load_jobs
from worker.settings import Settings

log = logging.getLogger("seen.cli")

OK, REFUSED, USAGE, NOT_FOUND, STORE = 0, 1, 2, 3, 4
EXIT_CODES = {
    OK: "done, shown, or nothing needed doing",
    REFUSED: "refused: the job is not in a state the action applies to",
    USAGE: "usage or settings error",
    NOT_FOUND: "no such job or dead letter",
    STORE: "the store did not answer or failed",
}
CLOSE_WITHIN_S = 2.0
SHOWN_CHARS = 2000
"""Characters of arguments and results ``jobs show`` prints without ``--full``."""


def operator() -> str:
    """Who runs the command, for the log and the pause record: ``user@host``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


@asynccontextmanager
async def stores(settings: Settings, *, cache: bool) -> AsyncIterator[tuple[Redis, Any]]:
    """The queue store's client and, when ``cache``, the cache manager; closed on exit."""
    queue = create_client(settings.queue_cache_settings())
    manager: CacheManager | None = None
    try:
        if cache:
            manager = await CacheManager.connect(settings, verify=False)
        yield queue, manager
    finally:
        for close in (queue.aclose, manager.aclose if manager is not None else None):
            if close is not None:
                try:
                    async with asyncio.timeout(CLOSE_WITHIN_S):
                        await close()
                except (TimeoutError, CacheError, OSError):
                    pass


def emit(args: argparse.Namespace, data: Any, text: str) -> None:
    print(json.dumps(data, indent=2, default=str) if args.json else text)


def code_of(result: ActionResult) -> int:
    return {
        Verdict.DONE: OK,
        Verdict.UNCHANGED: OK,
        Verdict.REFUSED: REFUSED,
        Verdict.NOT_FOUND: NOT_FOUND,
    }[result.verdict]


def guarded(
    run: Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, int]],
) -> Callable[[argparse.Namespace, Settings], int]:
    """A command: its store errors and bad input become an exit code and one line."""

    def command(args: argparse.Namespace, settings: Settings) -> int:
        try:
            return asyncio.run(run(args, settings))
        except (CursorError, InvalidKeyError, ValueError, RequeueError) as exc:
            print(f"seen-worker {args.command}: {exc}", file=sys.stderr)
            return USAGE
        except (CacheError, OSError) as exc:
            print(f"seen-worker {args.command}: store error: {exc}", file=sys.stderr)
            return STORE

    return command


# -- jobs list ------------------------------------------------------------------------------
def page_text(page: JobPage) -> str:
    lines = [f"{'JOB':<36} {'STATE':<9} {'FUNCTION':<26} {'TRIES':>5}  DETAIL"]
    for row in page.rows:
        detail = row.holder or row.error or ""
        lines.append(
            f"{row.job_id:<36} {row.state:<9} {(row.function or '?')[:26]:<26} "
            f"{'-' if row.tries is None else row.tries:>5}  {detail[:80]}"
        )
    if not page.rows:
        lines.append("(none on this page)")
    total = f" of {page.total}" if page.total is not None else ""
    lines.append(f"{len(page.rows)} shown{total}; {page.examined} {page.unit} looked at")
    if page.cursor:
        lines.append(f"next page: --cursor {page.cursor}")
    return "\n".join(lines)


async def _list(args: argparse.Namespace, settings: Settings) -> int:
    async with stores(settings, cache=args.state == "dead") as (queue, manager):
        page = await list_jobs(
            queue,
            settings.queue.key_layout(),
            args.state,
            limit=args.limit,
            cursor=args.cursor,
            function=args.function,
            manager=manager,
            scan_count=settings.cache.scan_count,
        )
    emit(args, asdict(page), page_text(page))
    return OK


# -- jobs show ------------------------------------------------------------------------------
def _cut(text: str | None, full: bool) -> str:
    if text is None:
        return "-"
    if full or len(text) <= SHOWN_CHARS:
        return text
    return f"{text[:SHOWN_CHARS]}… ({len(text)} characters; --full shows all)"


def detail_text(job: JobDetail, holder: Holder | None, max_tries: int | None, full: bool) -> str:
    lines = [
        f"job {job.job_id}: {job.state} (queue {job.queue}, shard {job.shard})",
        f"function  {job.function or '-'}",
        f"args      {_cut(job.args, full)}",
        f"kwargs    {_cut(job.kwargs, full)}",
        f"tries     {'-' if job.tries is None else job.tries} of "
        f"{'-' if max_tries is None else max_tries}",
        f"enqueued  {_when(job.enqueue_ms)}",
    ]
    if job.score_ms is not None:
        lines.append(f"due       {_when(job.score_ms)}")
    if job.lease is not None:
        who = holder.describe() if holder is not None else job.lease.holder
        left = "-" if job.lease.ttl_ms is None else f"{job.lease.ttl_ms / 1000:.1f} s"
        lines.append(f"held by   {who}; lease {left} left")
    if job.abort_requested:
        lines.append("abort     requested")
    if job.result is not None:
        r = job.result
        lines.append(f"started   {_when(r.start_ms)}")
        lines.append(f"finished  {_when(r.finish_ms)}")
        if r.success:
            lines.append(f"result    {_cut(r.value, full)}")
        else:
            lines.append(f"error     {r.error or 'failed'}: {_cut(r.value, full)}")
            if r.traceback:
                lines.append("traceback\n" + r.traceback.rstrip())
    if job.problem:
        lines.append(f"unreadable {job.problem}")
    for stored in job.dead_letters:
        letter = stored.letter
        lines.append(f"dead letter {stored.id} at {_when(letter.at_ms)}: {letter.reason[:300]}")
    return "\n".join(lines)


def _when(ms: int | None) -> str:
    import time

    if not ms:
        return "-"
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ms / 1000))
    except (OverflowError, OSError, ValueError):
        return str(ms)


def max_tries_of(settings: Settings, function: str | None) -> int | None:
    if function is None:
        return None
    for job in load_jobs(settings).resolve(settings):
        if job.name == function:
            return job.max_tries if job.max_tries is not None else settings.worker.max_tries
    return None


async def _show(args: argparse.Namespace, settings: Settings) -> int:
    async with stores(settings, cache=True) as (queue, manager):
        job = await inspect_job(queue, settings.queue.key_layout(), args.job_id, manager=manager)
        holder = None
        if job.lease is not None:
            holders = await worker_holders(
                queue, manager.keys, [job.lease.holder], settings.health.stale_after
            )
            holder = holders.get(job.lease.holder)
    tries = max_tries_of(settings, job.function)
    data = {
        **asdict(job),
        "max_tries": tries,
        "holder": None if holder is None else asdict(holder),
        "dead_letters": [{"id": s.id, **s.letter.model_dump()} for s in job.dead_letters],
    }
    emit(args, data, detail_text(job, holder, tries, args.full))
    return NOT_FOUND if job.state == "not_found" and not job.dead_letters else OK


# -- jobs retry / cancel / delete / requeue -------------------------------------------------
def action_command(
    name: str,
) -> Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, int]]:
    async def act(args: argparse.Namespace, settings: Settings) -> int:
        async with stores(settings, cache=False) as (queue, _):
            admin = JobAdmin(queue, settings.queue.key_layout())
            do = {"retry": admin.retry_now, "cancel": admin.cancel, "delete": admin.delete}[name]
            result = await do(args.job_id)
        log.info(
            "action by %s: %s job %s: %s (%s)",
            operator(),
            name,
            args.job_id,
            result.verdict.value,
            result.message,
        )
        emit(args, result.as_dict(), f"{name} {args.job_id}: {result.message}")
        return code_of(result)

    return act


async def _requeue(args: argparse.Namespace, settings: Settings) -> int:
    async with stores(settings, cache=True) as (queue, manager):
        results = await requeue_dead_letters(
            manager,
            queue,
            settings.queue.key_layout(),
            args.letter_ids,
            known=set(load_jobs(settings).names()),
            limit=settings.dashboard.max_action_items,
            who=operator(),
            new_id=args.new_id,
        )
    text = "\n".join(f"requeue {r.job_id}: {r.message}" for r in results)
    emit(args, [r.as_dict() for r in results], text)
    return max(code_of(r) for r in results)


# -- queue pause / resume / status ----------------------------------------------------------
async def _queue(args: argparse.Namespace, settings: Settings) -> int:
    layout = settings.queue.key_layout()
    async with stores(settings, cache=False) as (queue, _):
        if args.queue_command == "pause":
            state = await pause(queue, layout, by=operator(), reason=args.reason or "")
            log.warning("action by %s: %s", operator(), state.describe())
        elif args.queue_command == "resume":
            was = await resume(queue, layout)
            log.warning(
                "action by %s: queue %s %s",
                operator(),
                layout.name,
                "resumed" if was else "was not paused",
            )
            state = await pause_state(queue, layout)
        else:
            state = await pause_state(queue, layout)
    emit(args, state.as_dict(), state.describe())
    return OK


# -- parsers --------------------------------------------------------------------------------
def add_jobs(sub: Any) -> None:
    jobs = sub.add_parser(
        "jobs",
        help="list, show and act on jobs (exit 0 ok, 1 refused, 2 usage, 3 not found, 4 store)",
    )
    verbs = jobs.add_subparsers(dest="jobs_command", required=True)
    listing = verbs.add_parser("list", help="jobs in one state, a bounded page at a time")
    listing.add_argument("--state", choices=LIST_STATES, default="waiting")
    listing.add_argument("--function", help="only jobs of this function")
    listing.add_argument("--limit", type=int, default=50, help="entries looked at per page")
    listing.add_argument("--cursor", help="where the previous page said the next one starts")
    listing.set_defaults(handler=guarded(_list))
    show = verbs.add_parser("show", help="one job: record, tries, holder, result, dead letters")
    show.add_argument("job_id")
    show.add_argument("--full", action="store_true", help="print arguments and results whole")
    show.set_defaults(handler=guarded(_show))
    for name, what in (
        ("retry", "make a queued (deferred or retrying) job due now"),
        ("cancel", "abort a running or queued job (ARQ's abort)"),
        ("delete", "delete a queued job no worker runs"),
    ):
        verb = verbs.add_parser(name, help=what)
        verb.add_argument("job_id")
        verb.set_defaults(handler=guarded(action_command(name)))
    requeue = verbs.add_parser("requeue", help="requeue dead letters (by their id)")
    requeue.add_argument("letter_ids", nargs="+", metavar="LETTER_ID")
    requeue.add_argument(
        "--new-id", action="store_true", help="enqueue under a fresh id, not the original"
    )
    requeue.set_defaults(handler=guarded(_requeue))
    for parser in (
        listing,
        show,
        requeue,
        *(verbs.choices[n] for n in ("retry", "cancel", "delete")),
    ):
        parser.add_argument("--json", action="store_true", help="print the answer as JSON")


def add_queue(sub: Any) -> None:
    queue = sub.add_parser("queue", help="pause, resume or show the queue (fleet-wide)")
    verbs = queue.add_subparsers(dest="queue_command", required=True)
    paused = verbs.add_parser("pause", help="workers stop claiming within one poll")
    paused.add_argument("--reason", help="said by status, the overview and the banner")
    verbs.add_parser("resume", help="workers claim again")
    verbs.add_parser("status", help="paused or not, by whom and since when")
    for parser in verbs.choices.values():
        parser.add_argument("--json", action="store_true", help="print the state as JSON")
        parser.set_defaults(handler=guarded(_queue))
