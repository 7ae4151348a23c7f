"""Creates the one connection pool a process uses, with bounded retries.

A server that is down must give a clear ``CacheConnectionError`` after a bounded number of
attempts (connect timeout x retries, plus backoff), never a hang. redis-py's ``Retry`` covers
connection and timeout errors on each command: a connection broken by a server restart is
replaced transparently on the next attempt.
"""

from __future__ import annotations

import ssl

from redis import exceptions as redis_exc
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import EqualJitterBackoff

from cache.config import CacheSettings

RETRY_ON = (redis_exc.ConnectionError, redis_exc.TimeoutError)


def make_retry(settings: CacheSettings) -> Retry:
    """Exponential backoff with jitter, capped, for ``settings.retries`` retries."""
    return Retry(
        EqualJitterBackoff(cap=settings.retry_cap, base=settings.retry_base),
        settings.retries,
        supported_errors=RETRY_ON,
    )


def create_pool(settings: CacheSettings) -> BlockingConnectionPool:
    """A pool that waits (bounded) for a free connection instead of failing under load."""
    url = settings.url()
    kwargs: dict[str, object] = {
        "max_connections": settings.max_connections,
        "timeout": settings.pool_timeout,
        "socket_connect_timeout": settings.connect_timeout,
        "socket_timeout": settings.socket_timeout,
        "socket_keepalive": True,
        "health_check_interval": settings.health_check_interval,
        "retry": make_retry(settings),
        "retry_on_error": list(RETRY_ON),
        "decode_responses": False,
        "client_name": "seen-worker",
    }
    if "://" not in settings.addr:
        kwargs["db"] = settings.db
    if settings.username is not None:
        kwargs["username"] = settings.username
    if settings.password is not None:
        kwargs["password"] = settings.password.get_secret_value()
    if url.startswith("rediss://") or settings.tls:
        kwargs["ssl_cert_reqs"] = ssl.CERT_REQUIRED if settings.tls_verify else ssl.CERT_NONE
        if settings.tls_ca_file:
            kwargs["ssl_ca_certs"] = settings.tls_ca_file
    pool: BlockingConnectionPool = BlockingConnectionPool.from_url(url, **kwargs)
    return pool


def create_client(settings: CacheSettings) -> Redis:
    """A client over a fresh pool; the caller owns it and must ``aclose()`` it."""
    client: Redis = Redis.from_pool(create_pool(settings))
    return client
