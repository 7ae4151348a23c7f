"""Settings the cache layer needs, as plain pydantic models.

They hold no I/O and read no environment: ``worker.settings.Settings`` composes them with the
environment and ``settings.toml``. Tests and other services can build them directly.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from cache.numbers import (
    MAX_COUNT,
    Count,
    CountOrZero,
    Seconds,
    SecondsOrZero,
    WholeSeconds,
    WholeSecondsOrZero,
)

_SCHEMES = ("redis", "rediss", "unix")


MAX_VALUE_BYTES = 512 * 1024 * 1024
"""Largest string value Redis, Valkey and Dragonfly accept (proto-max-bulk-len)."""


class _Section(BaseModel):
    # No inf/nan in any number: every duration and size is finite (cache.numbers).
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class CacheSettings(_Section):
    """How to reach the store (Dragonfly in production, Redis/Valkey here)."""

    addr: str = Field(
        "localhost:6379",
        description="host:port, a redis:// / rediss:// URL, or host:port,host:port,... (cluster)",
    )
    cluster: bool = Field(
        False, description="the store is a Redis Cluster (implied by several nodes in addr)"
    )
    username: str | None = Field(None, description="ACL user name")
    password: SecretStr | None = Field(None, description="password (never logged)")
    db: int = Field(0, ge=0, le=15)
    tls: bool = Field(False, description="use TLS (implied by a rediss:// addr)")
    tls_ca_file: str | None = Field(None, description="CA bundle for TLS")
    tls_verify: bool = Field(True, description="verify the server certificate")
    connect_timeout: Seconds = Field(2.0, description="seconds to open a connection")
    socket_timeout: Seconds = Field(5.0, description="seconds to wait for a reply")
    max_connections: Count = Field(64, description="pool size per process")
    pool_timeout: Seconds = Field(5.0, description="seconds to wait for a free connection")
    retries: int = Field(3, ge=0, le=20, description="retries on connection/timeout errors")
    retry_base: Seconds = Field(0.05, description="first backoff step, seconds")
    retry_cap: Seconds = Field(1.0, description="largest backoff step, seconds")
    health_check_interval: WholeSecondsOrZero = Field(
        15, description="seconds idle before a PING check"
    )
    namespace: str = Field("seen", pattern=r"^[a-z][a-z0-9_-]{0,31}$")
    max_value_bytes: int = Field(
        8 * 1024 * 1024, gt=0, le=MAX_VALUE_BYTES, description="largest value we write"
    )
    compress_threshold: CountOrZero = Field(
        4096, description="JSON values above this many bytes are zlib-compressed; 0 = never"
    )
    scan_count: Count = Field(500, description="COUNT hint for SCAN")
    delete_batch: Count = Field(500, description="keys per UNLINK when deleting by pattern")

    @field_validator("addr")
    @classmethod
    def _check_addr(cls, value: str) -> str:
        value = value.strip()
        if "://" in value:
            parts = urlsplit(value)
            if parts.scheme not in _SCHEMES:
                raise ValueError(f"scheme must be one of {_SCHEMES}, got {parts.scheme!r}")
            if parts.scheme != "unix" and not parts.hostname:
                raise ValueError("URL has no host")
            return value
        for node in value.split(","):
            _host_port(node.strip(), value)
        return ",".join(node.strip() for node in value.split(","))

    @model_validator(mode="after")
    def _check_cluster(self) -> CacheSettings:
        if self.is_cluster:
            if self.db != 0:
                raise ValueError("a Redis Cluster has only db 0; set cache.db = 0")
            if self.addr.startswith("unix://"):
                raise ValueError("a Redis Cluster is reached over TCP, not a unix socket")
        return self

    @property
    def is_cluster(self) -> bool:
        """True when the store is a cluster: ``cluster = true`` or several nodes in ``addr``."""
        return self.cluster or "," in self.addr

    def cluster_nodes(self) -> list[tuple[str, int]]:
        """The (host, port) start-up nodes of a cluster ``addr`` (a URL names one node)."""
        if "://" in self.addr:
            parts = urlsplit(self.addr)
            return [(parts.hostname or "localhost", parts.port or 6379)]
        return [_host_port(node, self.addr) for node in self.addr.split(",")]

    def url(self) -> str:
        """The connection URL, credentials included only when set via the URL itself.

        The password from ``password`` is passed separately (never embedded in a string
        that could be logged).
        """
        if "://" in self.addr:
            return self.addr
        scheme = "rediss" if self.tls else "redis"
        first = self.addr.split(",", 1)[0]  # a cluster's first node, for logs and messages
        return f"{scheme}://{first}/{self.db}"

    def safe_url(self) -> str:
        """The URL with any password masked, for logs and error messages."""
        if self.is_cluster and "://" not in self.addr:
            return f"{'rediss' if self.tls else 'redis'}://{self.addr} (cluster)"
        parts = urlsplit(self.url())
        if parts.password is None:
            return self.url()
        user = quote(parts.username or "")
        netloc = f"{user}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        return parts._replace(netloc=netloc).geturl()


def _host_port(node: str, whole: str) -> tuple[str, int]:
    host, sep, port = node.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected host:port (or a comma-separated list) or a URL, got {whole!r}")
    return host, int(port)


class TTLSettings(_Section):
    """Time-to-live of each kind of entry, in seconds (defaults: the documented TTL table)."""

    session: WholeSeconds = 24 * 3600
    user_profile: WholeSeconds = 15 * 60
    catalog: WholeSeconds = 5 * 60
    download_progress: WholeSeconds = 30
    download_terminal: WholeSeconds = Field(3600, description="completed/failed/cancelled")
    download_list: WholeSeconds = 5 * 60
    search_results: WholeSeconds = 10 * 60
    recommendations: WholeSeconds = 3600
    rate_limit: WholeSeconds = 60
    lock: WholeSeconds = 30


class LockSettings(_Section):
    """Distributed locks: lease renewal and how a blocking acquire waits (docs/coordination.md)."""

    renew_fraction: float = Field(
        1 / 3, gt=0, lt=1, description="renew a held lease after this fraction of its TTL"
    )
    acquire_timeout: SecondsOrZero = Field(10.0, description="default wait of a blocking acquire")
    retry_base: Seconds = Field(0.005, description="first backoff step while waiting")
    retry_cap: Seconds = Field(0.25, description="largest backoff step while waiting")
    drift: float = Field(
        0.01, ge=0, lt=0.5, description="clock-drift share of the TTL assumed lost locally"
    )


class CatalogSettings(_Section):
    """Catalog cache: single-flight fills, early refresh, generations (docs/catalog.md)."""

    fill_lock_ttl: Seconds = Field(
        5.0, description="lease of the single-flight fill lock, renewed while loading"
    )
    wait_timeout: Seconds = Field(
        10.0, description="longest a caller waits for another caller's fill"
    )
    poll_initial: Seconds = Field(0.005, description="first poll delay while waiting")
    poll_max: Seconds = Field(0.1, description="largest poll delay while waiting")
    xfetch_beta: float = Field(
        1.0, ge=0, le=100, description="early-refresh eagerness (XFetch beta); 0 = never early"
    )
    generation_ttl: WholeSeconds = Field(
        7200, description="seconds a generation counter lives; > every catalog TTL"
    )
    hint_capacity: CountOrZero = Field(
        100_000, description="generations remembered per process to save a round trip"
    )
    stats_flush_interval: SecondsOrZero = Field(
        10.0, description="seconds between flushes of counters to the store; 0 = never"
    )


class DownloadSettings(_Section):
    """The download-progress pipeline (docs/progress.md). ``shards`` must be the same for every
    producer and worker of one deployment: it decides which keys hold a download."""

    shards: int = Field(16, ge=1, le=1024, description="key shards {dl:0}..{dl:n-1}")
    events_maxlen: int = Field(
        10_000, ge=10, le=MAX_COUNT, description="approximate cap of each event stream"
    )
    speed_window: Seconds = Field(5.0, description="seconds: time constant of the speed average")
    pending_lease: Seconds = Field(
        15.0,
        description="seconds before an unstarted drain is replaced",
    )
    pending_ttl: WholeSeconds = Field(
        600, description="seconds a coalesced, unapplied update is kept"
    )
    drain_batch: int = Field(200, ge=1, le=5000, description="updates applied per round trip")
    drain_budget: Seconds = Field(5.0, description="seconds one drain job runs before handing on")
    cleanup_batch: int = Field(500, ge=1, le=5000, description="stale entries removed per batch")


class DeadLetterSettings(_Section):
    """The capped list of job payloads that could not be applied (docs/wire-format.md)."""

    max_entries: Count = Field(1000, description="entries kept (LTRIM)")
    payload_chars: int = Field(2000, ge=64, le=1_000_000, description="payload text kept per entry")


class CacheConfig(_Section):
    """Everything ``CacheManager`` needs. ``worker.settings.Settings`` extends it."""

    cache: CacheSettings = CacheSettings()
    ttl: TTLSettings = TTLSettings()
    locks: LockSettings = LockSettings()
    catalog: CatalogSettings = CatalogSettings()
    download: DownloadSettings = DownloadSettings()
    deadletter: DeadLetterSettings = DeadLetterSettings()
