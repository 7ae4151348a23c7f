"""Who holds a lease or a lock: a worker id (or a lock holder's identity) as host, pid and
whether that process still beats.

A job lease names its run's worker (``<worker id>:<random>-<n>``, ``worker.engine.leases``) and
a lock token its holder (``cache.coordination.holder_of``: ``<who>/<host>/<pid>:<random>``).
Worker ids are ``<host>-<pid>-<random>`` (``worker.runtime.make_worker_id``); the worker's
heartbeat (``seen:worker:<id>``) says its host and pid for certain and whether it is alive, so
that is read first (one pipelined round trip for all the ids of a page); when the heartbeat is
gone (the worker stopped or was killed) the id itself is read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from redis.asyncio import Redis

from cache.clock import wall_ms
from cache.codec import as_text
from cache.errors import InvalidKeyError, translate_errors
from cache.keys import KeyBuilder

_WORKER_ID = re.compile(r"(?P<host>.+)-(?P<pid>\d+)-(?P<rand>[0-9a-f]{6})")


@dataclass(frozen=True)
class Holder:
    """A lease's or lock's holder, as far as the store can tell."""

    who: str
    """The worker id, or a lock holder's name."""
    host: str | None = None
    pid: int | None = None
    beating: bool | None = None
    """Its heartbeat is there and at most ``stale_after`` old; None: not a worker, or unknown."""

    def describe(self) -> str:
        where = f" on {self.host}" if self.host else ""
        pid = f" pid {self.pid}" if self.pid is not None else ""
        state = {True: "", False: " (no fresh heartbeat)", None: ""}[self.beating]
        return f"{self.who}{where}{pid}{state}"


def _text(value: object) -> str:
    return as_text(value) if isinstance(value, bytes | str) else ""


def parse_worker_id(worker_id: str) -> Holder:
    """Host and pid read from a worker id ``<host>-<pid>-<random>`` (no store read)."""
    found = _WORKER_ID.fullmatch(worker_id)
    if found is None:
        return Holder(worker_id)
    return Holder(worker_id, found["host"], int(found["pid"]))


async def worker_holders(
    queue: Redis, keys: KeyBuilder, worker_ids: Iterable[str], stale_after_s: float
) -> dict[str, Holder]:
    """Each worker id's holder, from its heartbeat when it has one, else from the id."""
    ids = list(dict.fromkeys(worker_ids))
    wanted: list[tuple[str, str]] = []
    for worker_id in ids:
        try:
            wanted.append((worker_id, keys.worker_heartbeat(worker_id)))
        except InvalidKeyError:
            continue
    out = {w: parse_worker_id(w) for w in ids}
    if not wanted:
        return out
    with translate_errors(wanted[0][1], operation="read heartbeats of holders"):
        async with queue.pipeline(transaction=False) as pipe:
            for _, key in wanted:
                pipe.hmget(key, ["host", "pid", "last_beat_ms"])
            replies = await pipe.execute(raise_on_error=False)
    now = wall_ms()
    for (worker_id, _), reply in zip(wanted, replies, strict=True):
        if not isinstance(reply, list) or reply[0] is None:
            guess = out[worker_id]
            out[worker_id] = Holder(worker_id, guess.host, guess.pid, False)
            continue
        host, pid, beat = [_text(v) for v in reply]
        fresh = beat.isdigit() and now - int(beat) <= stale_after_s * 1000
        number = int(pid) if pid.isdigit() else None
        out[worker_id] = Holder(worker_id, host or None, number, fresh)
    return out
