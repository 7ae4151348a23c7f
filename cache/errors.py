"""One error hierarchy for the cache layer.

Callers catch ``CacheError``; each error names the key (or pattern) it concerns so a log line
alone says what failed. redis-py exceptions never leak out of ``cache``.

The error classes are a leaf: redis-py is imported only by the functions that translate its
exceptions, so settings and other leaf modules can use these classes without loading it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class CacheError(Exception):
    """Base of every error raised by the cache layer."""

    def __init__(self, message: str, *, key: str | None = None) -> None:
        self.key = key
        super().__init__(f"{message} (key={key!r})" if key is not None else message)


class CacheConnectionError(CacheError):
    """The store could not be reached after the configured retries."""


class CacheTimeoutError(CacheConnectionError):
    """The store did not answer within the socket timeout."""


class CacheResponseError(CacheError):
    """The store answered with an error (wrong type, script error, ...)."""


class CacheOutOfMemoryError(CacheResponseError):
    """The store refused a write because it is out of memory (maxmemory reached)."""


class CorruptKeyError(CacheResponseError):
    """A stored key a script reads holds the wrong type or a value it cannot use.

    The script found it before its first write (or undid what it had written), so the call
    failed alone: it wrote nothing but, where that is safe, the repair its message names
    (the key removed or reset), after which the same call goes through. Where a repair is not
    safe (a lock, a fencing counter, a lease, a cron slot claim) the key is left as found and
    the call is refused every time until someone fixes it. ``key`` is the bad key, ``script``
    the script that found it (docs/dragonfly.md, "Bad keys").
    """

    def __init__(self, message: str, *, key: str, script: str = "") -> None:
        self.script = script
        super().__init__(message, key=key)


class InvalidKeyError(CacheError, ValueError):
    """A caller-supplied id or pattern cannot be used to form a key."""


class ValueTooLargeError(CacheError, ValueError):
    """A value exceeds ``cache.max_value_bytes``."""


class SerializationError(CacheError, ValueError):
    """A value could not be encoded to, or decoded from, its stored form."""


class InvalidArgumentError(CacheError, ValueError):
    """A caller-supplied number (a TTL, a wait, a window, a limit) is not finite or out of
    range; the message names the argument."""


_OOM_TEXTS = ("out of memory", "command not allowed when used memory")


def is_out_of_memory(exc: BaseException) -> bool:
    """True when the store refused a command because it is full (maxmemory, noeviction).

    By type first: redis-py turns Redis's ``-OOM ...`` reply into ``OutOfMemoryError`` and drops
    the ``OOM`` prefix. By text for the rest: Dragonfly answers ``-ERR Out of memory`` (a plain
    ``ResponseError``), and an error inside a script or transaction may carry the text only.
    """
    from redis import exceptions as redis_exc

    if isinstance(exc, redis_exc.OutOfMemoryError):
        return True
    if not isinstance(exc, redis_exc.ResponseError):
        return False
    text = str(exc).lstrip("-")
    return text.upper().startswith("OOM") or any(t in text.lower() for t in _OOM_TEXTS)


STORE_ERROR_KINDS = ("timeout", "connection", "oom", "readonly", "response", "other")
"""What ``store_error_kind`` returns: a fixed set, so it can label a metric."""


def store_error_kind(exc: BaseException) -> str:
    """Which of ``STORE_ERROR_KINDS`` a store failure is, from it and its causes.

    The store's own error (redis-py's, or an ``OSError``) is asked first, as our ``CacheError``
    wrapping it may say less (a replica's ``READONLY`` becomes a plain response error); then
    our own classes. ``timeout`` before ``connection`` (a timeout is a kind of connection error
    here); ``oom`` as ``is_out_of_memory`` says; ``readonly`` for a replica's ``READONLY``
    reply (a failover in progress); ``response`` for any other error reply; else ``other``.
    """
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    for candidates in ([e for e in chain if not isinstance(e, CacheError)], chain):
        for candidate in candidates:
            kind = _kind_of(candidate)
            if kind != "other":
                return kind
    return "other"


def _kind_of(exc: BaseException) -> str:
    from redis import exceptions as redis_exc

    if isinstance(exc, CacheTimeoutError | redis_exc.TimeoutError | TimeoutError):
        return "timeout"
    if isinstance(exc, CacheOutOfMemoryError) or is_out_of_memory(exc):
        return "oom"
    if isinstance(exc, CacheConnectionError | redis_exc.ConnectionError | OSError):
        return "connection"
    if isinstance(exc, redis_exc.ReadOnlyError) or (
        isinstance(exc, redis_exc.ResponseError | CacheResponseError)
        and "READONLY" in str(exc).upper()
    ):
        return "readonly"
    if isinstance(exc, redis_exc.ResponseError | CacheResponseError):
        return "response"
    return "other"


@contextmanager
def translate_errors(key: str | None = None, *, operation: str = "") -> Iterator[None]:
    """Turn redis-py exceptions raised inside the block into ``CacheError`` subclasses."""
    from redis import exceptions as redis_exc

    what = f"{operation}: " if operation else ""
    try:
        yield
    except CacheError:
        raise
    except redis_exc.TimeoutError as exc:
        raise CacheTimeoutError(f"{what}store timed out: {exc}", key=key) from exc
    except (redis_exc.ConnectionError, ConnectionError, OSError) as exc:
        raise CacheConnectionError(f"{what}store unreachable: {exc}", key=key) from exc
    except redis_exc.ResponseError as exc:
        if is_out_of_memory(exc):
            raise CacheOutOfMemoryError(f"{what}store out of memory: {exc}", key=key) from exc
        raise CacheResponseError(f"{what}store error: {exc}", key=key) from exc
    except redis_exc.RedisError as exc:
        raise CacheError(f"{what}{exc}", key=key) from exc
    except redis_exc.RedisClusterException as exc:  # the cluster client's own errors
        if "cannot be connected" in str(exc):
            raise CacheConnectionError(f"{what}store unreachable: {exc}", key=key) from exc
        raise CacheError(f"{what}{exc}", key=key) from exc
