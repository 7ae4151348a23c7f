"""The one lease primitive: a key holding its holder's token, with a TTL (the lease).

Every lease in the project is this: a lock (``seen:lock:{<name>}``, plus its fencing counter,
``_locks``), the catalog fill lock (``...:fill``, ``cache.catalog``), the maintenance run guard
(``seen:lock:{maintenance:<job>}``, ``jobs.guard``) and a worker's job lease (ARQ's
``arq:in-progress:<id>``, ``worker.leases``). They differ in how they are *taken* (plain
``SET NX PX``; re-entrant by token; with a fencing token) and share how they are kept and
given back: ``lock_extend.lua`` renews only with the holder's token (compare-and-renew) and
``lock_release.lua`` deletes only with it (compare-and-delete), so a holder whose lease
already passed on can neither keep nor free the next holder's lease.

Renewal *loops* (when to renew, what to do when a renewal is refused) belong to each user;
this module is only the operations on the store.

A lease key of the wrong type is nobody's lease we could check: the scripts refuse it with
``CorruptKeyError`` naming the key and leave it as found (deleting it blindly could free a
lease someone else counts on); ``extend_many`` reports it as not renewed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from cache.errors import CorruptKeyError, translate_errors
from cache.scripts import Replicas, ScriptCall, ScriptRunner

log = logging.getLogger(__name__)

Token = str | bytes

EXTEND_SCRIPT = "lock_extend"
RELEASE_SCRIPT = "lock_release"
REENTRANT_ACQUIRE_SCRIPT = "guard_acquire"


class Lease:
    """Take, renew and give back token leases through one ``ScriptRunner`` (one store)."""

    def __init__(self, scripts: ScriptRunner) -> None:
        self.scripts = scripts

    async def acquire(self, key: str, token: Token, ms: int) -> bool:
        """Take ``key`` for ``ms`` milliseconds when nobody holds it (``SET NX PX``)."""
        with translate_errors(key, operation="SET NX"):
            return bool(await self.scripts.client.set(key, token, px=ms, nx=True))

    async def acquire_reentrant(self, key: str, token: Token, ms: int) -> bool:
        """Take ``key`` when free or already held with ``token`` (the lease restarts at ``ms``)."""
        return bool(await self.scripts.run(REENTRANT_ACQUIRE_SCRIPT, [key], [token, ms]))

    async def extend(self, key: str, token: Token, ms: int) -> bool:
        """Restart the lease at ``ms``; False (nothing changed) unless held with ``token``."""
        return int(await self.scripts.run(EXTEND_SCRIPT, [key], [token, ms])) == 1

    async def extend_many(self, leases: Sequence[tuple[str, Token]], ms: int) -> list[bool]:
        """``extend`` each ``(key, token)`` in one round trip; results in order. A lease key
        of the wrong type is logged and reported as not renewed; the others are renewed."""
        replies = await self.scripts.run_many(
            EXTEND_SCRIPT, [([key], [token, ms]) for key, token in leases]
        )
        return [_renewed(reply) for reply in replies]

    async def extend_many_confirmed(
        self, leases: Sequence[tuple[str, Token]], ms: int, replicas: Replicas
    ) -> list[tuple[bool, bool]]:
        """``extend_many`` and ``WAIT``: per lease (extended, confirmed by ``replicas``)."""
        calls: list[ScriptCall] = [([key], [token, ms]) for key, token in leases]
        replies, acked = await self.scripts.run_many_replicated(EXTEND_SCRIPT, calls, replicas)
        return [(_renewed(reply), ok) for reply, ok in zip(replies, acked, strict=True)]

    async def release(self, key: str, token: Token) -> bool:
        """Delete ``key``; False (nothing changed) unless held with ``token``."""
        return int(await self.scripts.run(RELEASE_SCRIPT, [key], [token])) == 1


def _renewed(reply: Any) -> bool:
    """One compare-and-renew's reply: 1 renewed; a bad lease key (``CorruptKeyError``, the
    others of the batch renewed) is not renewed, and said."""
    if isinstance(reply, CorruptKeyError):
        log.warning("lease not renewed: %s", reply)
        return False
    return int(reply) == 1
