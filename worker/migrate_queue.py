"""``seen-worker migrate-queue``: move the queue between ARQ's layout and the sharded one.

The queue's name and store come from the settings (``[queue]``), the target layout from
``--to``, the sharded side's shard count from ``--shards`` (default ``queue.shards``: run it
with the settings of the workers of the sharded layout). One pass moves every job and result
that can move now (``jobs.queue_move``); ``--until-empty`` repeats passes, with a short pause,
until nothing of the queue is left in the source layout, nothing can change any more, or
``--within`` seconds have passed. Each pass is printed (``--json``: one JSON object a line,
then a summary line). Exit 0: the source holds nothing of the queue; 1: something is left (held
by a worker at the deadline, duplicates, failures: named) or the store failed; 2: bad settings
or arguments (a cluster, a shard count below the one the keys use). The procedure for a running
deployment: docs/operations.md, "Moving a queue between layouts".
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from cache.client import create_client
from cache.errors import CacheError
from jobs.queue_move import DEFAULT_BATCH, MAX_BATCH, PassReport, QueueMoveError, QueueMover
from jobs.wire.layout import MAX_SHARDS, LayoutKind, QueueLayout
from worker.settings import Settings

DEFAULT_WITHIN_S = 300.0
PASS_PAUSE_S = 0.5
SHOWN = 10
"""Ids shown per kind of problem and pass (the JSON report has up to 20, the counts all)."""


def bounded_int(low: int, high: int) -> Any:
    """argparse type: an integer in [low, high]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is not in [{low}, {high}]")
        return value

    return parse


def add_arguments(move: argparse.ArgumentParser, seconds: Any) -> None:
    """The subcommand's arguments (``seconds``: the CLI's duration type)."""
    move.add_argument("--to", required=True, choices=["sharded", "arq"], help="target layout")
    move.add_argument(
        "--from",
        dest="source",
        choices=["arq", "sharded"],
        help="source layout (default: the other one)",
    )
    move.add_argument(
        "--shards",
        type=bounded_int(1, MAX_SHARDS),
        help="shards of the sharded layout (default queue.shards)",
    )
    move.add_argument(
        "--batch",
        type=bounded_int(1, MAX_BATCH),
        default=DEFAULT_BATCH,
        help=f"ids per script call (default {DEFAULT_BATCH})",
    )
    move.add_argument(
        "--until-empty",
        action="store_true",
        help="repeat passes until the source holds nothing of the queue (or --within)",
    )
    move.add_argument(
        "--within",
        type=seconds,
        help=f"with --until-empty: give up after this many seconds (default {DEFAULT_WITHIN_S:g})",
    )
    move.add_argument(
        "--drop-duplicates",
        action="store_true",
        help="delete the source copy of an id the target already has (periodic job ids)",
    )
    move.add_argument("--json", action="store_true", help="one JSON object per pass")


def layouts(args: argparse.Namespace, settings: Settings) -> tuple[QueueLayout, QueueLayout]:
    """(source, target) the arguments and settings name; ValueError when they do not fit."""
    target_kind: LayoutKind = args.to
    source_kind: LayoutKind = args.source or ("arq" if target_kind == "sharded" else "sharded")
    if source_kind == target_kind:
        raise ValueError(f"--from and --to are both {target_kind}: nothing to move")
    shards = args.shards or settings.queue.shards
    name = settings.queue.name
    return QueueLayout.of(source_kind, name, shards), QueueLayout.of(target_kind, name, shards)


async def migrate_queue(settings: Settings, args: argparse.Namespace) -> int:
    """Run the passes; the exit code (module docstring)."""
    from worker.queue_store import QueueStoreError, refuse_cluster

    if args.within is not None and not args.until_empty:
        return _refuse("--within needs --until-empty")
    try:
        source, target = layouts(args, settings)
    except ValueError as exc:
        return _refuse(str(exc))
    store = settings.queue_cache_settings()
    if store.is_cluster:
        return _refuse(
            "the queue store is a Redis Cluster: ARQ's layout cannot live there, and a move "
            "runs one script over both layouts' keys on one instance"
        )
    client = create_client(store)
    try:
        await refuse_cluster(client, store.safe_url())
        mover = QueueMover(
            client,
            source,
            target,
            batch=args.batch,
            drop_duplicates=args.drop_duplicates,
            scan_count=settings.cache.scan_count,
        )
        await mover.check_shards()
        show = _Printer(args.json, source, target)
        if args.until_empty:
            within = args.within if args.within is not None else DEFAULT_WITHIN_S
            reports = await mover.until_empty(within, pause_s=PASS_PAUSE_S, on_pass=show.one)
        else:
            reports = [await mover.run_pass()]
            show.one(1, reports[0])
    except (QueueStoreError, QueueMoveError) as exc:
        return _refuse(str(exc))
    except CacheError as exc:
        print(f"seen-worker migrate-queue: the store failed: {exc}", file=sys.stderr)
        return 1
    finally:
        await client.aclose()
    return show.summary(reports)


def _refuse(message: str) -> int:
    print(f"seen-worker migrate-queue: {message}", file=sys.stderr)
    return 2


class _Printer:
    """Prints each pass (text or one JSON object a line) and the summary."""

    def __init__(self, as_json: bool, source: QueueLayout, target: QueueLayout) -> None:
        self.as_json = as_json
        self.source = source
        self.target = target

    def one(self, number: int, report: PassReport) -> None:
        if self.as_json:
            print(json.dumps({"pass": number, **report.as_dict()}), flush=True)
            return
        print(
            f"pass {number}: moved {report.moved} job(s) and {report.results_moved} result(s); "
            f"held by a worker {report.held.count}; duplicates {report.duplicates.count}; "
            f"dropped {report.dropped.count}; failed {report.failed.count}; "
            f"left in the source: {report.left} job(s), {report.results_left} result(s)"
            + (
                f"; {report.other_results} result(s) of other queues untouched"
                if report.other_results
                else ""
            ),
            flush=True,
        )
        for label, tally in (
            ("duplicate", report.duplicates),
            ("dropped", report.dropped),
            ("failed", report.failed),
        ):
            for job_id, reason in tally.examples[:SHOWN]:
                print(f"  {label} {job_id}: {reason}", flush=True)
            if tally.count > SHOWN:
                print(f"  ... and {tally.count - SHOWN} more {label}", flush=True)
        if report.held.count:
            shown = ", ".join(job_id for job_id, _ in report.held.examples[:SHOWN])
            more = f" and {report.held.count - SHOWN} more" if report.held.count > SHOWN else ""
            print(f"  held (a worker runs them; a later pass moves them): {shown}{more}")

    def summary(self, reports: list[PassReport]) -> int:
        last = reports[-1]
        done = last.empty
        if self.as_json:
            line = {
                "done": done,
                "passes": len(reports),
                "moved": sum(r.moved for r in reports),
                "results_moved": sum(r.results_moved for r in reports),
                "source": self.source.describe(),
                "target": self.target.describe(),
            }
            print(json.dumps(line), flush=True)
        elif done:
            print(f"done: nothing of the queue is left in the {self.source.describe()}")
        else:
            print(
                f"NOT DONE: {last.left} job(s) and {last.results_left} result(s) are left in "
                f"the {self.source.describe()} (see above)"
            )
        return 0 if done else 1
