"""Settings: ``settings.toml`` < ``SEEN_*`` environment < explicit values.

Env names are ``SEEN_<SECTION>_<NAME>`` (``SEEN_CACHE_ADDR``, ``SEEN_CACHE_PASSWORD``,
``SEEN_CACHE_DB``, ``SEEN_TTL_SESSION`` ...). ``SEEN_SETTINGS_FILE`` names another TOML file;
a named file that is missing, malformed TOML or an invalid value stops start-up with one
``SettingsError`` naming the setting. Nothing is read at import time: call ``load_settings``.

A leaf module: it imports pydantic, the cache's config models and ``jobs.config``, never the
store client, ARQ, Sentry or the jobs, so anything may import it (a test checks it).
``WorkerSettings`` (ARQ's CLI entry point) is an alias resolved by name from ``worker.app``.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)
from pydantic_settings import SettingsError as SourceError

from cache.config import CacheConfig, CacheSettings
from cache.keys import validate_name
from cache.numbers import Count, Seconds, SecondsOrZero
from jobs.config import (
    JobSection,
    MaintenanceSettings,
    WarmupSettings,
    check_job_name,
    check_module_name,
)
from jobs.wire.layout import MAX_SHARDS, QueueLayout
from worker.env_check import check_environment, env_name, nearest_setting
from worker.http.hosts import check_allowed_host

log = logging.getLogger("seen.settings")

SETTINGS_FILE_ENV = "SEEN_SETTINGS_FILE"
DEFAULT_SETTINGS_FILE = Path("settings.toml")


class SettingsError(Exception):
    """Configuration that cannot be used; the message names the setting."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


QueueName = Annotated[str, AfterValidator(lambda v: validate_name(v, "queue name"))]
ModuleName = Annotated[str, AfterValidator(check_module_name)]
JobName = Annotated[str, AfterValidator(check_job_name)]


class QueueSettings(_Section):
    """Where ARQ keeps jobs. Defaults to the cache's store; point it at an instance without
    ``cache_mode`` when the cache instance may evict."""

    addr: str | None = Field(None, description="host:port or URL; empty = the cache's addr")
    password: SecretStr | None = None
    db: int | None = Field(None, ge=0, le=15)
    name: QueueName = "arq:queue"
    layout: Literal["arq", "sharded"] = Field(
        "arq",
        description='"arq" (ARQ\'s keys, one instance) or "sharded" (hashtag shards)',
    )
    shards: int = Field(
        8, ge=1, le=MAX_SHARDS, description="shards of the sharded layout (ignored by arq)"
    )
    cluster: bool = Field(
        False,
        description="queue.addr is a Redis Cluster (sharded layout only; implied by several "
        "nodes in addr)",
    )

    def key_layout(self) -> QueueLayout:
        """The queue's keys (``jobs.wire.layout``)."""
        return QueueLayout.of(self.layout, self.name, self.shards)


class WorkerSection(_Section):
    """ARQ worker tuning, heartbeats and how the worker rides out a store outage.

    ``poll_delay`` bounds how long a new job waits to be picked up (ARQ polls; it has no
    blocking pop); ``max_jobs`` bounds concurrent jobs per process, kept below the pool size so
    jobs never starve the heartbeat and queue bookkeeping of connections.
    """

    max_jobs: Count = 50
    poll_delay: Seconds = Field(0.05, description="seconds between queue polls")
    job_timeout: Seconds = Field(30.0, description="default per-function timeout")
    keep_result: SecondsOrZero = 60.0
    max_tries: Count = 5
    shutdown_grace: Seconds = Field(20.0, description="seconds running jobs get on SIGTERM")
    uvloop: bool = True
    heartbeat_interval: Seconds = Field(5.0, description="seconds between heartbeats")
    heartbeat_ttl: Seconds = Field(20.0, description="a heartbeat lives this long")
    job_lease: Seconds = Field(
        15.0, description="a dead worker's job is picked up again after at most this"
    )
    backoff_base: Seconds = Field(0.5, description="first wait after a store error")
    backoff_cap: Seconds = Field(10.0, description="longest wait between reconnects")
    startup_timeout: Seconds = Field(60.0, description="how long start-up waits for stores")
    lease_replicas: int = Field(
        0,
        ge=0,
        le=5,
        description="replicas that must confirm a job's lease (WAIT) before it runs; >= 1: a "
        "failover never runs a job twice at once",
    )
    lease_replica_timeout: Seconds = Field(
        0.5,
        gt=0,
        description="longest wait for those replicas (at most job_lease / 4); an unconfirmed "
        "claim is handed back",
    )
    job_modules: tuple[ModuleName, ...] = Field(
        (),
        description="modules whose @job/@periodic jobs the worker also runs "
        "(docs/write-your-own-job.md)",
    )

    @model_validator(mode="after")
    def _check_timing(self) -> WorkerSection:
        if self.heartbeat_ttl < 2 * self.heartbeat_interval:
            raise ValueError("worker.heartbeat_ttl must be at least 2 x worker.heartbeat_interval")
        if self.job_lease < 2 * self.heartbeat_interval:
            raise ValueError("worker.job_lease must be at least 2 x worker.heartbeat_interval")
        if self.backoff_cap < self.backoff_base:
            raise ValueError("worker.backoff_cap must be at least worker.backoff_base")
        if self.lease_replicas and self.lease_replica_timeout * 4 > self.job_lease:
            # a claim or renewal waits this long for its replicas: with more, a lease would be
            # mostly spent before it counted
            raise ValueError("worker.lease_replica_timeout must be at most worker.job_lease / 4")
        return self


class HealthSettings(_Section):
    """What ``seen-worker health`` calls healthy."""

    max_queue_age: Seconds = Field(60.0, description="oldest waiting job may be this old")
    stale_after: Seconds = Field(15.0, description="a heartbeat older than this is stale")
    timeout: Seconds = Field(5.0, description="the whole check gives up after this")


class SentrySettings(_Section):
    """Error reporting; on only when a DSN is set (``SEEN_SENTRY_DSN``)."""

    dsn: SecretStr | None = None
    environment: str = "production"
    traces_sample_rate: float = Field(0.0, ge=0, le=1)

    @field_validator("dsn")
    @classmethod
    def _check_dsn(cls, value: SecretStr | None) -> SecretStr | None:
        """Parse the DSN now, as Sentry will, so a bad one stops start-up with its name
        (the message never repeats the DSN: it holds a key). Empty means off.

        Sentry is imported here, not at the top: this module is a leaf (see its docstring)."""
        from sentry_sdk.utils import BadDsn, Dsn

        if value is None or not value.get_secret_value().strip():
            return None
        text = value.get_secret_value().strip()
        try:
            Dsn(text)
        except BadDsn as exc:
            raise ValueError(f"not a Sentry DSN ({exc})") from None
        return SecretStr(text)


def _listen_addr(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"must be host:port with a port in 0..65535, got {value!r}")
    return value


def _token(value: SecretStr | None) -> SecretStr | None:
    """A blank token is no token; surrounding whitespace (a file's newline) is not part of it."""
    if value is None:
        return None
    text = value.get_secret_value().strip()
    return SecretStr(text) if text else None


def _long_token(value: SecretStr | None) -> SecretStr | None:
    if value is not None and len(value.get_secret_value().encode()) < 32:
        raise ValueError("must be at least 32 bytes (seen-worker dashboard --new-token)")
    return value


AllowedHost = Annotated[str, AfterValidator(check_allowed_host)]
"""A name an HTTP server of ours answers besides loopback and IP literals (``worker.http.hosts``):
``name`` (any port) or ``name:port``; no scheme, path or wildcard."""
ListenAddr = Annotated[str, AfterValidator(_listen_addr)]
"""``host:port`` to bind; port 0 picks a free port, an IPv6 host is written in brackets."""
Token = Annotated[SecretStr | None, AfterValidator(_token)]
LongToken = Annotated[SecretStr | None, AfterValidator(_token), AfterValidator(_long_token)]
"""A token that guards a non-loopback dashboard: at least 32 bytes when set."""


class _Listener(_Section):
    """A section that binds an HTTP server on ``addr``."""

    addr: ListenAddr

    def host_port(self) -> tuple[str, int]:
        host, _, port = self.addr.rpartition(":")
        return host.strip("[]"), int(port)


class HttpSettings(_Listener):
    """The worker's own HTTP endpoint: ``/metrics``, ``/livez``, ``/readyz``.

    Loopback by default. ``metrics_token`` makes ``/metrics`` require ``Authorization: Bearer
    <token>``; a non-loopback ``addr`` without it is logged as a warning at start-up. Requests
    for a ``Host`` that is not loopback, an IP address or in ``allowed_hosts`` get 421 (DNS
    rebinding, ``worker.http.hosts``).
    """

    enabled: bool = Field(True, description="serve /metrics, /livez, /readyz")
    addr: ListenAddr = Field(
        "127.0.0.1:9464", description="host:port to bind; port 0 picks a free port"
    )
    metrics_token: Token = Field(
        None, description="bearer token /metrics requires; unset = no token"
    )
    allowed_hosts: tuple[AllowedHost, ...] = Field(
        (),
        description="Host names (or host:port) served besides loopback and IP addresses "
        "(a scraper's DNS name); JSON list",
    )


class DashboardSettings(_Listener):
    """``seen-worker dashboard`` (docs/dashboard.md): where it binds, who may read and act.

    Loopback by default; any other bind refuses to start without ``token`` (at least 32 bytes,
    ``seen-worker dashboard --new-token`` prints one) and without ``metrics_token`` for its
    ``/metrics``. Tokens only via ``SEEN_DASHBOARD_TOKEN`` / ``SEEN_DASHBOARD_METRICS_TOKEN``
    or ``--token-file``; read-only unless ``allow_actions``. Only a ``Host`` that is loopback,
    an IP address or in ``allowed_hosts`` is answered (``worker.http.hosts``).
    """

    addr: ListenAddr = Field(
        "127.0.0.1:9470", description="host:port to bind; port 0 = any free port"
    )
    token: LongToken = Field(None, description="bearer/login token; required off loopback")
    metrics_token: LongToken = Field(None, description="bearer token of /metrics")
    allow_actions: bool = Field(False, description="requeue dead letters, run periodic jobs now")
    allowed_hosts: tuple[AllowedHost, ...] = Field(
        (),
        description="Host names (or host:port) served besides loopback and IP addresses "
        "(behind a proxy: its public name); JSON list",
    )
    max_sse_clients: Count = Field(100, description="open live-download streams at most")
    client_queue: Count = Field(256, description="event batches buffered per SSE client")
    replay_batches: Count = Field(2048, description="recent batches kept for Last-Event-ID")
    replay_mb: Count = Field(64, description="megabytes of recent batches kept, at most")
    gap_limit: Count = Field(20000, description="entries a resume reads from the streams")
    heartbeat: Seconds = Field(15.0, description="seconds between SSE keep-alive comments")
    read_block: Seconds = Field(1.0, description="seconds one XREAD of the streams blocks")
    max_action_items: Count = Field(100, description="items one action touches at most")
    payload_chars: Count = Field(300, description="payload characters a page shows")
    page_limit: Count = Field(200, description="rows a table shows")
    shutdown_timeout: Seconds = Field(3.0, description="seconds the server gets to stop")


class LogSettings(_Section):
    level: str = Field("INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL)$")
    json_lines: bool = Field(False, alias="json")
    jobs: Literal["failures", "all"] = Field(
        "failures",
        description='per-job log lines: "failures" (failed, retried, cancelled, dead-lettered) '
        'or "all" (also one line per completed job)',
    )


def _otlp_url(value: str) -> str:
    """An OTLP/HTTP traces URL: http(s), a host, the signal path, no credentials."""
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(f"must be an http:// or https:// URL, got {value!r}")
    if parts.username or parts.password:
        raise ValueError("must not hold credentials (put them in OTEL_EXPORTER_OTLP_HEADERS)")
    if parts.path in {"", "/"}:
        raise ValueError(
            f"must be the full traces URL, e.g. {parts.scheme}://{parts.netloc}/v1/traces"
        )
    return value


OtlpUrl = Annotated[str, AfterValidator(_otlp_url)]


class OtelSettings(_Section):
    """Tracing with OpenTelemetry (docs/tracing.md): off unless ``enabled``; needs the
    ``otel`` extra. Everything else an OpenTelemetry SDK reads from ``OTEL_*`` variables
    (service name, resource attributes, exporter headers and timeouts, batch sizes) applies."""

    enabled: bool = Field(
        False, description="continue producers' traces, export spans over OTLP (otel extra)"
    )
    endpoint: OtlpUrl | None = Field(
        None,
        description="OTLP/HTTP traces URL, e.g. http://collector:4318/v1/traces; unset = the "
        "OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT variables, else http://localhost:4318/v1/traces",
    )
    sample_ratio: float = Field(
        0.0,
        ge=0,
        le=1,
        description="share of jobs enqueued without a trace that start one (a job with a "
        "trace follows its producer's sampling)",
    )

    @field_validator("enabled")
    @classmethod
    def _check_extra(cls, enabled: bool) -> bool:
        """On without the extra is a configuration error naming the extra (found by module
        name only: this module is a leaf and imports no OpenTelemetry)."""
        if enabled:
            missing = [m for m in OTEL_MODULES if not _importable(m)]
            if missing:
                raise ValueError(
                    f"needs the otel extra (missing: {', '.join(missing)}): "
                    "pip install 'seen-worker[otel]'"
                )
        return enabled


OTEL_MODULES = ("opentelemetry.sdk", "opentelemetry.exporter.otlp.proto.http")
"""What the ``otel`` extra brings that the worker's tracing imports."""


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


class FleetSettings(_Section):
    """How the dashboard reads the whole fleet from the stores (``worker.http.fleet``).

    Every read is bounded: by a deadline (a slow store never hangs a page or a scrape), by how
    many keys one SCAN walk looks at, and by how many items a view holds.
    """

    read_timeout: Seconds = Field(2.0, description="one dashboard read gives up after this")
    scrape_timeout: Seconds = Field(
        2.0, description="the fleet series' collection gives up after this (seen_fleet_up 0)"
    )
    scan_keys: Count = Field(100_000, description="keys one SCAN walk looks at, at most")
    queue_scan: Count = Field(1000, description="due jobs checked for a running marker")
    schedule_slots: Count = Field(12, description="past slots shown per periodic job")
    history: Count = Field(20, description="runs shown per periodic job")
    cron_grace: Seconds = Field(30.0, description="a slot unclaimed this long after it is missed")
    dead_letter_sample: Count = Field(1000, description="dead letters read to count by reason")


class Settings(CacheConfig, BaseSettings):
    """The whole configuration of one worker process."""

    model_config = SettingsConfigDict(
        env_prefix="SEEN_",
        env_nested_delimiter="_",
        env_nested_max_split=1,
        extra="forbid",
        frozen=True,
        populate_by_name=True,
    )

    queue: QueueSettings = QueueSettings()
    worker: WorkerSection = WorkerSection()
    health: HealthSettings = HealthSettings()
    maintenance: MaintenanceSettings = MaintenanceSettings()
    warmup: WarmupSettings = WarmupSettings()
    sentry: SentrySettings = SentrySettings()
    http: HttpSettings = HttpSettings()
    dashboard: DashboardSettings = DashboardSettings()
    log: LogSettings = LogSettings()
    fleet: FleetSettings = FleetSettings()
    otel: OtelSettings = OtelSettings()
    jobs: dict[JobName, JobSection] = Field(
        default_factory=dict,
        description="[jobs.<name>]: per-job overrides (every, timeout, max_tries, keep_result)",
    )

    _toml_file: ClassVar[Path | None] = None

    @model_validator(mode="after")
    def _check_queue_store(self) -> Settings:
        """On ARQ's layout the job queue needs one instance: its keys (queue, job, result) span
        hash slots. The sharded layout keeps each shard in one slot: it may be a cluster."""
        if self.queue.layout == "sharded":
            if self.queue.cluster and self.queue.db:
                raise ValueError("a Redis Cluster has only db 0; set queue.db = 0")
            return self
        hint = 'use queue.layout = "sharded" (docs/operations.md, "The queue on a cluster")'
        if self.queue.cluster or (self.queue.addr is not None and "," in self.queue.addr):
            raise ValueError(
                f"queue.addr is a Redis Cluster, but ARQ's layout needs one instance (its keys "
                f"span hash slots): {hint}, or point queue.addr at a standalone server"
            )
        if self.cache.is_cluster and not self.queue.addr:
            raise ValueError(
                "cache.addr is a Redis Cluster and the job queue shares it, but ARQ's layout "
                f"needs one instance: {hint}, or set queue.addr to a standalone server"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if cls._toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=cls._toml_file))
        return tuple(sources)

    def queue_addr(self) -> str:
        return self.queue.addr or self.cache.addr

    def queue_cache_settings(self) -> CacheSettings:
        """Connection settings of the queue store: the cache's, with the ``[queue]`` overrides.

        A queue on another instance takes only its own password (never the cache's). The queue
        may be a Redis Cluster only with the sharded layout (each shard's keys share one slot);
        on ARQ's layout it is one instance (``worker.queue_store`` refuses a cluster node).
        """
        sharded = self.queue.layout == "sharded"
        update: dict[str, Any] = {"cluster": sharded and self.cache.is_cluster}
        if self.queue.addr:
            update.update(
                addr=self.queue.addr,
                password=self.queue.password,
                username=None,
                cluster=sharded and (self.queue.cluster or "," in self.queue.addr),
            )
        elif self.queue.password is not None:
            update["password"] = self.queue.password
        if self.queue.db is not None:
            update["db"] = self.queue.db
        return self.cache.model_copy(update=update)


def settings_file(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The TOML file to read: explicit, else ``$SEEN_SETTINGS_FILE``, else ./settings.toml."""
    named = explicit if explicit is not None else os.environ.get(SETTINGS_FILE_ENV)
    if named:
        path = Path(named)
        if not path.is_file():
            source = "argument" if explicit is not None else SETTINGS_FILE_ENV
            raise SettingsError(f"settings file {str(path)!r} (from {source}) does not exist")
        return path
    return DEFAULT_SETTINGS_FILE if DEFAULT_SETTINGS_FILE.is_file() else None


def _describe(error: dict[str, Any]) -> str:
    loc = [str(p) for p in error.get("loc", ())]
    name = ".".join(loc) or "settings"
    env = "SEEN_" + "_".join(loc[:2]).upper() if loc else ""
    where = f" (file key {name!r} or env {env})" if env else ""
    hint = ""
    if error.get("type") == "extra_forbidden" and loc:
        near = nearest_setting(Settings, loc[0], loc[1] if len(loc) > 1 else "")
        if near is not None:
            hint = f"; did you mean {'.'.join(p for p in near if p)} ({env_name(*near)})?"
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    return f"setting {name}: {message}{where}{hint}"


def _source_problem(exc: SourceError) -> str:
    """pydantic-settings' own parse error (it does not name the variable) with its cause."""
    cause = f": {exc.__cause__}" if exc.__cause__ is not None else ""
    return f"{exc}{cause}"


def load_settings(file: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Build Settings from file, environment and ``overrides``; raises ``SettingsError``.

    Unknown ``SEEN_*`` variables close to a setting's name are errors (``worker.env_check``);
    others are logged as ignored.
    """
    path = settings_file(file)
    if path is not None:
        try:
            tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise SettingsError(f"settings file {str(path)!r} is not valid TOML: {exc}") from exc
    report = check_environment(os.environ, Settings)
    if report.errors:
        raise SettingsError("; ".join(report.errors))
    for line in report.ignored:
        log.warning("%s", line)
    bound = type("Settings", (Settings,), {"_toml_file": path, "__module__": __name__})
    try:
        settings: Settings = bound(**overrides)
    except ValidationError as exc:
        problems = "; ".join(_describe(dict(e)) for e in exc.errors())
        raise SettingsError(problems) from None
    except SourceError as exc:
        raise SettingsError(_source_problem(exc)) from None
    return settings


def __getattr__(name: str) -> Any:
    """``arq worker.settings.WorkerSettings``: ARQ's CLI entry point, kept under this name.

    The entry point lives in ``worker.app`` (the module that builds the worker). ARQ's CLI looks
    the name up here by string, like an entry point; resolving it late, by name, keeps this
    module a leaf: ``worker.app`` imports settings, settings never imports ``worker.app``.
    """
    if name == "WorkerSettings":
        return importlib.import_module("worker.app").WorkerSettings
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
