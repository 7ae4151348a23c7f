"""Locks, maintenance run guards and job leases: who holds each (worker, host, pid), its
fencing token, time left.

All are the one lease primitive (``cache.coordination``): a key holding its holder's token with
a TTL. Locks (``seen:lock:{<name>}`` + ``:fence``, ``LockService``) live on the cache store;
run guards (``seen:lock:{maintenance:<job>}``, ``jobs.guard``) and job leases (the queue
layout's ``in-progress`` keys of every shard, ``worker.engine.leases``) on the queue store. They
are found with bounded SCAN walks (one walk covers every shard of the queue) and read in one
pipelined round trip per store.

No token is shown: a lock's token names its holder before its secret part
(``cache.coordination.holder_of``: who, host, pid); a lease's names its worker (the host and
pid come from the worker's heartbeat, ``worker.holders``, or its id when the heartbeat is
gone); a guard's token is the job id of the run holding it, whose own lease names the worker.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from cache.codec import as_text
from cache.coordination import holder_of
from cache.errors import translate_errors
from cache.keys import KeyBuilder
from cache.unreadable import Unreadable
from jobs.inspect import NO_HOLDER, lease_holder
from jobs.wire.layout import QueueLayout
from worker.fleet.bounds import scan_keys
from worker.fleet.models import LockView
from worker.holders import Holder, worker_holders

GUARD_PREFIX = "maintenance:"
UNNAMED = "unknown (a token that names no holder)"


def lock_name(key: str, prefix: str) -> str | None:
    """``<name>`` of ``<prefix>{<name>}``; None for a fencing counter or any other key."""
    rest = key[len(prefix) :]
    if key.startswith(prefix) and rest.startswith("{") and rest.endswith("}"):
        return rest[1:-1]
    return None


def _ttl(pttl: object) -> float | None:
    ms = int(pttl) if isinstance(pttl, int | str | bytes) else -2
    return None if ms < 0 else round(ms / 1000, 3)


@dataclass(frozen=True)
class _Found:
    kind: str
    name: str
    key: str


@dataclass(frozen=True)
class _Raw:
    found: _Found
    token: str
    ttl_s: float | None
    fence: int | None


async def _read(client: Redis, found: list[_Found], unreadable: Unreadable) -> list[_Raw]:
    """Keys gone between the SCAN and the read are dropped; a key that is not a string (the
    store refuses GET) is skipped and noted in ``unreadable`` (kind ``lease`` or ``lock``; a
    run guard is a lock)."""
    if not found:
        return []
    with translate_errors(found[0].key, operation="read locks"):
        async with client.pipeline(transaction=False) as pipe:
            for item in found:
                pipe.get(item.key)
                pipe.pttl(item.key)
                if item.kind == "lock":
                    pipe.get(item.key + ":fence")
            replies = await pipe.execute(raise_on_error=False)
    out = []
    at = 0
    for item in found:
        token, pttl = replies[at : at + 2]
        fence = replies[at + 2] if item.kind == "lock" else None
        at += 3 if item.kind == "lock" else 2
        if isinstance(token, Exception):
            unreadable.skip("lease" if item.kind == "lease" else "lock", item.key, str(token))
            continue
        if token is None:
            continue
        fencing = None
        if isinstance(fence, bytes | str) and as_text(fence).isdigit():
            fencing = int(as_text(fence))
        out.append(_Raw(item, as_text(token), _ttl(pttl), fencing))
    return out


async def _scan_locks(
    client: Redis, keys: KeyBuilder, kinds: set[str], count: int, max_keys: int, limit: int
) -> list[_Found]:
    prefix = keys.namespace + ":lock:"
    scan = await scan_keys(
        client, keys.pattern("lock"), count=count, max_keys=max_keys, max_items=2 * limit
    )
    found = []
    for key in scan.keys:
        name = lock_name(key, prefix)
        if name is None:
            continue
        kind = "guard" if name.startswith(GUARD_PREFIX) else "lock"
        if kind in kinds:
            shown = name.removeprefix(GUARD_PREFIX) if kind == "guard" else name
            found.append(_Found(kind, shown, key))
    return found[:limit]


async def _guard_runs(queue: Redis, layout: QueueLayout, job_ids: list[str]) -> dict[str, str]:
    """The worker holding each guard's job (its lease's token), where one does."""
    valid = []
    for job_id in job_ids:
        try:
            valid.append((job_id, layout.for_job(job_id).in_progress(job_id)))
        except ValueError:
            continue
    if not valid:
        return {}
    with translate_errors(valid[0][1], operation="read guard leases"):
        async with queue.pipeline(transaction=False) as pipe:
            for _, key in valid:
                pipe.get(key)
            tokens = await pipe.execute(raise_on_error=False)
    return {
        job_id: lease_holder(as_text(token))
        for (job_id, _), token in zip(valid, tokens, strict=True)
        if isinstance(token, bytes | str)
    }


def _view(raw: _Raw, holder: Holder, job_id: str | None) -> LockView:
    item = raw.found
    return LockView(
        kind=item.kind,
        name=item.name,
        holder=holder.who,
        host=holder.host,
        pid=holder.pid,
        beating=holder.beating,
        job_id=job_id,
        fencing_token=raw.fence,
        ttl_s=raw.ttl_s,
        store="cache" if item.kind == "lock" else "queue",
    )


async def read_locks(
    cache: Redis,
    queue: Redis,
    keys: KeyBuilder,
    layout: QueueLayout,
    *,
    separate: bool,
    limit: int,
    count: int,
    max_keys: int,
    stale_after_s: float,
    unreadable: Unreadable | None = None,
) -> list[LockView]:
    """At most ``limit`` of each kind, soonest to expire first within each kind."""
    skipped = unreadable if unreadable is not None else Unreadable()
    cache_kinds = {"lock"} if separate else {"lock", "guard"}
    on_cache = await _scan_locks(cache, keys, cache_kinds, count, max_keys, limit)
    raws = await _read(cache, on_cache, skipped)
    if separate:
        guards = await _scan_locks(queue, keys, {"guard"}, count, max_keys, limit)
        raws += await _read(queue, guards, skipped)
    leases = await scan_keys(
        queue, layout.pattern("in-progress"), count=count, max_keys=max_keys, max_items=limit
    )
    found = []
    for key in leases.keys:
        parsed = layout.job_of(key, "in-progress")
        if parsed is not None:
            found.append(_Found("lease", parsed[1], key))
    raws += await _read(queue, found, skipped)
    guard_workers = await _guard_runs(
        queue, layout, [r.token for r in raws if r.found.kind == "guard"]
    )
    workers = [lease_holder(r.token) for r in raws if r.found.kind == "lease"]
    workers += list(guard_workers.values())
    lock_holders = {r.token: holder_of(r.token) for r in raws if r.found.kind == "lock"}
    workers += [h.who for h in lock_holders.values() if h is not None]
    known = await worker_holders(queue, keys, [w for w in workers if w != NO_HOLDER], stale_after_s)
    views = []
    for raw in raws:
        kind = raw.found.kind
        if kind == "lease":
            who = lease_holder(raw.token)
            views.append(_view(raw, known.get(who, Holder(who)), raw.found.name))
        elif kind == "guard":
            worker = guard_workers.get(raw.token)
            holder = known.get(worker, Holder(worker)) if worker else Holder("no run holds it")
            views.append(_view(raw, holder, raw.token))
        else:
            named = lock_holders.get(raw.token)
            if named is None:
                views.append(_view(raw, Holder(UNNAMED), None))
                continue
            heartbeat = known.get(named.who)
            beating = heartbeat.beating if heartbeat is not None and heartbeat.host else None
            views.append(_view(raw, Holder(named.who, named.host, named.pid, beating), None))
    order = {"lease": 0, "guard": 1, "lock": 2}
    views.sort(key=lambda v: (order[v.kind], v.ttl_s is None, v.ttl_s or 0.0, v.name))
    return views
