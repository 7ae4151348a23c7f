"""How a failed read is worded: by its kind, so a bad value is never called an outage.

"store unavailable" (503) means the store did not answer: refused, cut off, timed out. A store
that answered with an error (``WRONGTYPE``: a key of another type) is a "store error" (502); a
value that cannot be used (an id that breaks the id rule) is "unreadable data" (500). One bad
row never gets here at all: the fleet readers skip and count it (``cache.unreadable``).
"""

from __future__ import annotations

from cache.errors import store_error_kind


def describe_failure(exc: BaseException) -> tuple[int, str]:
    """The HTTP status and the one-line text a page, a JSON twin or a stream shows."""
    kind = store_error_kind(exc)
    if kind in ("timeout", "connection"):
        return 503, f"store unavailable: {exc}"
    if kind == "readonly":
        return 503, f"store read-only (a failover in progress?): {exc}"
    if kind == "oom":
        return 503, f"store out of memory: {exc}"
    if kind == "response":
        return 502, f"store error: {exc}"
    if isinstance(exc, ValueError):
        return 500, f"unreadable data: {exc}"
    return 500, f"store read failed: {exc}"
