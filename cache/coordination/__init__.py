"""Coordination between processes: the public API of ``manager.locks`` and
``manager.ratelimit``.

``LockService`` hands out leases (``Lock``: token, fencing number, renewal; ``hold()`` returns
a ``Holding`` context that cancels its body when the lease is lost, raising ``LockLost``).
``RateLimiter`` checks per-user, per-action limits (GCRA or fixed window) and returns a
``RateLimitResult``. ``Lease`` is the one lease primitive (take, compare-and-renew,
compare-and-delete a token lease) that locks, the catalog fill lock, the maintenance run guard
and worker job leases all use.

Private modules behind it (import them only to test their internals): ``_holder`` (who a
lock token names), ``_lease``, ``_locks``, ``_ratelimit``. See docs/coordination.md.
"""

from cache.coordination._holder import HolderIdentity, holder_of
from cache.coordination._lease import Lease
from cache.coordination._locks import (
    LOCK_COUNTERS,
    Holding,
    Lock,
    LockError,
    LockLost,
    LockService,
    LockTimeout,
)
from cache.coordination._ratelimit import (
    DECISIONS,
    LIMITERS,
    MAX_LIMIT,
    MAX_WINDOW_SECONDS,
    RateLimiter,
    RateLimitResult,
    Window,
)

__all__ = [
    "DECISIONS",
    "LIMITERS",
    "LOCK_COUNTERS",
    "MAX_LIMIT",
    "MAX_WINDOW_SECONDS",
    "HolderIdentity",
    "Holding",
    "Lease",
    "Lock",
    "LockError",
    "LockLost",
    "LockService",
    "LockTimeout",
    "RateLimitResult",
    "RateLimiter",
    "Window",
    "holder_of",
]
