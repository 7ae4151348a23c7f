"""What each page shows, read from the stores: one module-level reader per page.

A reader takes the request (its query and path parameters) and the page's ``Unreadable``
(rows it skipped are counted there) and returns plain data: the page's template renders it,
its JSON twin serves it as is. Bad input (an id that breaks the id rule, a cursor of another
list, an unknown state) raises ``ValueError``: the page answers 400 with the reason.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict
from typing import Any

from starlette.requests import Request

from cache.download import DownloadStatus
from cache.unreadable import Unreadable
from dashboard.context import context, state
from jobs.browse import LIST_STATES, list_jobs
from jobs.inspect import JOB_STATES, inspect_job
from worker.fleet import DeadLetters
from worker.fleet.bounds import concurrently, deadline
from worker.health import HealthVerdict, evaluate
from worker.holders import worker_holders

SEARCH_STATES = LIST_STATES
DOWNLOAD_STATUSES = tuple(s.value for s in DownloadStatus)


def query(request: Request, name: str, limit: int = 200) -> str | None:
    """A query parameter, stripped, at most ``limit`` characters; None when absent or empty."""
    value = request.query_params.get(name, "").strip()
    if len(value) > limit:
        raise ValueError(f"{name} is longer than {limit} characters")
    return value or None


async def verdict(request: Request) -> HealthVerdict:
    """The banner's verdict: ``seen-worker health``'s rules (``worker.health``), bounded by
    ``fleet.read_timeout``."""
    s, ctx = state(request), context(request)
    async with deadline("verdict", ctx.settings.fleet.read_timeout):
        return await evaluate(s.manager, s.queue, ctx.settings)


async def overview(request: Request, skipped: Unreadable) -> dict[str, Any]:
    s = state(request)
    async with concurrently() as group:
        view = group.create_task(s.fleet.overview(skipped))
        shards = group.create_task(s.fleet.downloads())
        judged = group.create_task(verdict(request))
    found = view.result()
    return {
        **asdict(found),
        "alive": found.alive,
        "stale": found.stale,
        "active_downloads": sum(x.active for x in shards.result()),
        "pending_updates": sum(x.pending for x in shards.result()),
        "verdict": judged.result().model_dump(include={"level", "reasons", "warnings"}),
    }


async def schedules(request: Request, skipped: Unreadable) -> list[dict[str, Any]]:
    return [asdict(job) for job in await state(request).fleet.schedules(skipped)]


def dead_letter_page(dead: DeadLetters) -> dict[str, Any]:
    """Rows grouped by reason, biggest group first (the fleet's order); payloads already cut.
    Each row says whether it can be requeued and, if not, why (``jobs.requeue``)."""
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in dead.entries:
        rows[e.reason].append(
            {
                "id": e.id,
                "at_ms": e.at_ms,
                "job_id": e.job_id,
                "function": e.function,
                "payload": e.payload,
                "truncated": e.truncated,
                "requeueable": e.why_not is None,
                "why_not": e.why_not,
                "same_id": e.requeue_as,
            }
        )
    return {
        "total": dead.total,
        "shown": len(dead.entries),
        "groups": [
            {"reason": g.reason, "count": g.count, "letters": rows[g.reason]} for g in dead.groups
        ],
    }


async def dead_letters(request: Request, skipped: Unreadable) -> dict[str, Any]:
    ctx = context(request)
    dead = await state(request).fleet.dead_letters(
        ctx.cfg.page_limit, ctx.cfg.payload_chars, skipped
    )
    return dead_letter_page(dead)


async def locks(request: Request, skipped: Unreadable) -> list[dict[str, Any]]:
    views = await state(request).fleet.locks(context(request).cfg.page_limit, skipped)
    return [asdict(lock) for lock in views]


async def download_filters(request: Request, skipped: Unreadable) -> dict[str, Any]:
    """The live page's filters (its rows come over SSE and are filtered by its script)."""
    status = query(request, "status")
    if status is not None and status not in DOWNLOAD_STATUSES:
        raise ValueError(f"status must be one of {', '.join(DOWNLOAD_STATUSES)}")
    filters = {"user": query(request, "user"), "status": status, "id": query(request, "id")}
    return {"filters": filters, "statuses": DOWNLOAD_STATUSES}


async def downloads(request: Request, skipped: Unreadable) -> dict[str, Any]:
    """Active downloads, or with ``user``, ``status`` or ``id`` the ones that match (a user's
    include their finished ones, kept ``ttl.download_terminal``)."""
    s, limit = state(request), context(request).cfg.page_limit
    user, status, ident = query(request, "user"), query(request, "status"), query(request, "id")
    if status is not None and status not in DOWNLOAD_STATUSES:
        raise ValueError(f"status must be one of {', '.join(DOWNLOAD_STATUSES)}")
    if ident is not None:
        one = await s.manager.download.get_progress(ident)
        rows = [one] if one is not None else []
    elif user is not None:
        rows = await s.manager.download.get_user_downloads(user, limit=limit, unreadable=skipped)
    else:
        rows = await s.manager.download.get_active_downloads(limit=limit, unreadable=skipped)
    rows = [
        p
        for p in rows
        if (status is None or p.status.value == status) and (user is None or p.user_id == user)
    ]
    return {
        "downloads": [p.model_dump(mode="json") for p in rows],
        "filters": {"user": user, "status": status, "id": ident},
        "statuses": DOWNLOAD_STATUSES,
    }


async def jobs(request: Request, skipped: Unreadable) -> dict[str, Any]:
    """One page of jobs in a state (``jobs.browse``), or the one job an id names."""
    ctx, s = context(request), state(request)
    wanted = query(request, "state") or "waiting"
    function = query(request, "function")
    cursor = query(request, "cursor", 500)
    ident = query(request, "id")
    found = None
    if ident is not None:
        job = await inspect_job(s.queue, ctx.layout, ident, unreadable=skipped)
        found = {"job_id": job.job_id, "state": job.state, "function": job.function}
    limit = (
        ctx.cfg.page_limit if query(request, "limit") is None else int(query(request, "limit") or 0)
    )
    page = await list_jobs(
        s.queue,
        ctx.layout,
        wanted,
        limit=min(limit, ctx.cfg.page_limit),
        cursor=cursor,
        function=function,
        manager=s.manager,
        scan_count=ctx.settings.cache.scan_count,
        unreadable=skipped,
    )
    holders = await worker_holders(
        s.queue,
        s.manager.keys,
        [r.holder for r in page.rows if r.holder],
        ctx.settings.health.stale_after,
    )
    rows = []
    for row in page.rows:
        holder = holders.get(row.holder) if row.holder else None
        rows.append(
            {
                **asdict(row),
                "host": holder.host if holder else None,
                "pid": holder.pid if holder else None,
            }
        )
    return {
        **asdict(page),
        "rows": rows,
        "states": SEARCH_STATES,
        "functions": sorted(ctx.functions),
        "found": found,
        "id": ident,
    }


async def job(request: Request, skipped: Unreadable) -> dict[str, Any]:
    """One job (``jobs.inspect``), its holder's host and pid, its function's max tries."""
    ctx, s = context(request), state(request)
    job_id = request.path_params["job_id"]
    view = await inspect_job(s.queue, ctx.layout, job_id, manager=s.manager, unreadable=skipped)
    holder = None
    if view.lease is not None:
        holders = await worker_holders(
            s.queue, s.manager.keys, [view.lease.holder], ctx.settings.health.stale_after
        )
        holder = holders.get(view.lease.holder)
    data = asdict(view)
    data["dead_letters"] = [{"id": d.id, **d.letter.model_dump()} for d in view.dead_letters]
    return {
        **data,
        "max_tries": ctx.max_tries.get(view.function or "", None),
        "holder": None if holder is None else asdict(holder),
        "full": query(request, "full") is not None,
        "shown_chars": max(ctx.cfg.payload_chars, 2000),
        "states": JOB_STATES,
    }
