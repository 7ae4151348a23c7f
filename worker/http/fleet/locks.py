"""Locks, maintenance run guards and job leases: who holds each, its fencing token, time left.

All are the one lease primitive (``cache.coordination``): a key holding its holder's token with
a TTL. Locks (``seen:lock:{<name>}`` + ``:fence``, ``LockService``) live on the cache store;
run guards (``seen:lock:{maintenance:<job>}``, ``jobs.guard``) and job leases
(``arq:in-progress:<id>``, ``worker.leases``) on the queue store. They are found with bounded
SCAN walks and read in one pipelined round trip per store. A lock's random token is a
credential (it releases the lock), so only its first characters are shown.
"""

from __future__ import annotations

from arq.constants import in_progress_key_prefix
from redis.asyncio import Redis

from cache.codec import as_text
from cache.errors import translate_errors
from cache.keys import KeyBuilder
from cache.unreadable import Unreadable
from worker.http.fleet.bounds import scan_keys
from worker.http.fleet.models import LockView

GUARD_PREFIX = "maintenance:"
TOKEN_SHOWN = 8


def lock_name(key: str, prefix: str) -> str | None:
    """``<name>`` of ``<prefix>{<name>}``; None for a fencing counter or any other key."""
    rest = key[len(prefix) :]
    if key.startswith(prefix) and rest.startswith("{") and rest.endswith("}"):
        return rest[1:-1]
    return None


def lease_holder(token: str) -> str:
    """The worker id in a job lease token ``<worker id>:<random>``; plain ARQ writes ``1``."""
    worker_id, sep, _ = token.partition(":")
    return worker_id if sep else "arq (no token)"


def _ttl(pttl: object) -> float | None:
    ms = int(pttl) if isinstance(pttl, int | str | bytes) else -2
    return None if ms < 0 else round(ms / 1000, 3)


async def _read(
    client: Redis, found: list[tuple[str, str, str]], unreadable: Unreadable
) -> list[LockView]:
    """``found``: (kind, name, key). Keys gone between the SCAN and the read are dropped; a
    key that is not a string (the store refuses GET) is skipped and noted in ``unreadable``
    (kind ``lease`` or ``lock``; a run guard is a lock)."""
    if not found:
        return []
    with translate_errors(found[0][2], operation="read locks"):
        async with client.pipeline(transaction=False) as pipe:
            for kind, _, key in found:
                pipe.get(key)
                pipe.pttl(key)
                if kind == "lock":
                    pipe.get(key + ":fence")
            replies = await pipe.execute(raise_on_error=False)
    views = []
    at = 0
    for kind, name, key in found:
        token, pttl = replies[at : at + 2]
        fence = replies[at + 2] if kind == "lock" else None
        at += 3 if kind == "lock" else 2
        if isinstance(token, Exception):
            unreadable.skip("lease" if kind == "lease" else "lock", key, str(token))
            continue
        if token is None:
            continue
        text = as_text(token)
        if kind == "lease":
            holder = lease_holder(text)
        elif kind == "guard":
            holder = text
        else:
            holder = text[:TOKEN_SHOWN] + ("…" if len(text) > TOKEN_SHOWN else "")
        fencing = None
        if isinstance(fence, bytes | str) and as_text(fence).isdigit():
            fencing = int(as_text(fence))
        store = "cache" if kind == "lock" else "queue"
        views.append(LockView(kind, name, holder, fencing, _ttl(pttl), store))
    return views


async def _scan_locks(
    client: Redis, keys: KeyBuilder, kinds: set[str], count: int, max_keys: int, limit: int
) -> list[tuple[str, str, str]]:
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
            found.append((kind, name.removeprefix(GUARD_PREFIX) if kind == "guard" else name, key))
    return found[:limit]


async def read_locks(
    cache: Redis,
    queue: Redis,
    keys: KeyBuilder,
    *,
    separate: bool,
    limit: int,
    count: int,
    max_keys: int,
    unreadable: Unreadable | None = None,
) -> list[LockView]:
    """At most ``limit`` of each kind, soonest to expire first within each kind."""
    skipped = unreadable if unreadable is not None else Unreadable()
    cache_kinds = {"lock"} if separate else {"lock", "guard"}
    on_cache = await _scan_locks(cache, keys, cache_kinds, count, max_keys, limit)
    views = await _read(cache, on_cache, skipped)
    if separate:
        views += await _read(
            queue, await _scan_locks(queue, keys, {"guard"}, count, max_keys, limit), skipped
        )
    leases = await scan_keys(
        queue, in_progress_key_prefix + "*", count=count, max_keys=max_keys, max_items=limit
    )
    found = [("lease", k.removeprefix(in_progress_key_prefix), k) for k in leases.keys]
    views += await _read(queue, found, skipped)
    order = {"lease": 0, "guard": 1, "lock": 2}
    views.sort(key=lambda v: (order[v.kind], v.ttl_s is None, v.ttl_s or 0.0, v.name))
    return views
