"""A real Prometheus for the tests (Debian's ``prometheus`` 2.42 and ``promtool``, never a mock).

``PrometheusServer`` starts ``prometheus`` on a free loopback port with a generated
configuration that scrapes the ``ScrapeTarget``s it is given (bearer tokens written to files,
as ``credentials_file`` wants them) and loads the given rule files; its HTTP API then answers
what a dashboard, an alert or a KEDA trigger would ask::

    targets = [ScrapeTarget("seen-fleet", dashboard_addr, bearer_token=METRICS_TOKEN)]
    async with PrometheusServer(tmp_path, targets, rule_files=[rules]) as prom:
        await prom.wait_for_targets_up(within=60)
        depth = await prom.wait_for_value('max(seen_fleet_queue_jobs{state="due"})',
                                          lambda v: v == 500, within=60)
        health = await prom.rule_health()          # {rule name: (health, last error)}

Bounded everywhere, so a test holds on a loaded two-core machine: start-up waits for
``/-/ready`` within ``start_within`` (and retries another port when the chosen one was taken
meanwhile), every wait has a deadline and says on failure what it last saw, and ``aclose()`` is
SIGTERM, a bounded wait, then SIGKILL (``worker.processes.stop_process``). Scrape and rule
evaluation intervals default to 1 s, so a condition is visible within a few seconds.

Missing binaries: ``require_prometheus()`` / ``require_promtool()`` skip the calling test, or
fail it with ``CI=true`` (``.ci/run`` installs the Debian package: a skip there would hide a
lane that silently stopped running).
"""

from __future__ import annotations

import asyncio
import math
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import httpx
import pytest
import yaml

from worker.processes import stop_process

START_ATTEMPTS = 3
STOP_GRACE_S = 10.0


def prometheus_binary() -> str | None:
    return shutil.which("prometheus")


def promtool_binary() -> str | None:
    return shutil.which("promtool")


def _missing(what: str) -> None:
    reason = f"{what} is not installed (Debian: apt-get install prometheus)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and {reason}")
    pytest.skip(reason)


def require_prometheus() -> str:
    """The ``prometheus`` binary; skips the test without it (fails it in CI)."""
    binary = prometheus_binary()
    if binary is None:
        _missing("prometheus")
    assert binary is not None
    return binary


def require_promtool() -> str:
    binary = promtool_binary()
    if binary is None:
        _missing("promtool")
    assert binary is not None
    return binary


def free_port() -> int:
    """A loopback port free at this moment (the caller retries if it is taken before use)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class ScrapeTarget:
    """One scrape job: ``addr`` (host:port) at ``metrics_path``, with an optional bearer token
    and labels added to every series of the job."""

    job: str
    addr: str
    metrics_path: str = "/metrics"
    bearer_token: str | None = None
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Sample:
    """One series of an instant vector: its labels and value."""

    labels: dict[str, str]
    value: float


class PrometheusError(AssertionError):
    """Prometheus did not start, or a query failed or never met its condition in time."""


class PrometheusServer:
    """One ``prometheus`` process of a test; an async context manager (start, then aclose)."""

    def __init__(
        self,
        workdir: Path,
        targets: Sequence[ScrapeTarget],
        *,
        rule_files: Sequence[Path] = (),
        scrape_interval: float = 1.0,
        scrape_timeout: float | None = None,
        evaluation_interval: float = 1.0,
        start_within: float = 60.0,
        binary: str | None = None,
    ) -> None:
        self.workdir = workdir
        self.targets = list(targets)
        self.rule_files = [Path(p).resolve() for p in rule_files]
        self.scrape_interval = scrape_interval
        self.scrape_timeout = min(scrape_timeout or scrape_interval, scrape_interval)
        self.evaluation_interval = evaluation_interval
        self.start_within = start_within
        self.binary = binary or require_prometheus()
        self.port: int | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._client: httpx.AsyncClient | None = None

    # -- configuration -------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """The configuration file's content (tokens as files next to it)."""
        jobs = []
        for index, target in enumerate(self.targets):
            job: dict[str, Any] = {
                "job_name": target.job,
                "metrics_path": target.metrics_path,
                "scrape_timeout": f"{self.scrape_timeout:g}s",
                "static_configs": [{"targets": [target.addr], "labels": dict(target.labels)}],
            }
            if target.bearer_token is not None:
                token_file = self.workdir / f"prometheus-token-{index}"
                token_file.write_text(target.bearer_token, encoding="utf-8")
                job["authorization"] = {"type": "Bearer", "credentials_file": str(token_file)}
            jobs.append(job)
        return {
            "global": {
                "scrape_interval": f"{self.scrape_interval:g}s",
                "evaluation_interval": f"{self.evaluation_interval:g}s",
            },
            "rule_files": [str(p) for p in self.rule_files],
            "scrape_configs": jobs,
        }

    def config_file(self) -> Path:
        path = self.workdir / "prometheus.yml"
        path.write_text(yaml.safe_dump(self.config(), sort_keys=False), encoding="utf-8")
        return path

    @property
    def url(self) -> str:
        assert self.port is not None, "not started"
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "prometheus.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # -- life cycle ----------------------------------------------------------------------
    async def start(self) -> Self:
        config = self.config_file()
        deadline = time.monotonic() + self.start_within
        for _attempt in range(START_ATTEMPTS):
            self._spawn(config, free_port())
            if await self._ready(deadline):
                self._client = httpx.AsyncClient(base_url=self.url, timeout=10)
                return self
            self._stop_process()  # the port was taken meanwhile, or it failed: try again
            if time.monotonic() >= deadline:
                break
        raise PrometheusError(f"prometheus did not become ready:\n{self.log()[-3000:]}")

    def _spawn(self, config: Path, port: int) -> None:
        self.port = port
        data = self.workdir / f"prometheus-data-{port}"
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                self.binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={data}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--web.enable-lifecycle",
                "--log.level=info",
            ],
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    async def _ready(self, deadline: float) -> bool:
        """Whether ``/-/ready`` answered 200 before ``deadline`` (False: it exited)."""
        async with httpx.AsyncClient(timeout=2) as client:
            while time.monotonic() < deadline:
                if self.proc is None or self.proc.poll() is not None:
                    return False
                try:
                    if (await client.get(f"{self.url}/-/ready")).status_code == 200:
                        return True
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        return False

    def _stop_process(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, STOP_GRACE_S)
        if self._log is not None:
            self._log.close()
            self._log = None

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        self._stop_process()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- HTTP API ------------------------------------------------------------------------
    async def api(self, path: str, **params: str) -> Any:
        """``GET /api/v1/<path>``'s ``data``; raises ``PrometheusError`` on an error reply."""
        assert self._client is not None, "not started"
        response = await self._client.get(f"/api/v1/{path}", params=params)
        body = response.json()
        if response.status_code != 200 or body.get("status") != "success":
            raise PrometheusError(f"{path} {params}: {response.status_code} {body}")
        return body["data"]

    async def query(self, expr: str) -> list[Sample]:
        """An instant query now; a scalar result is one sample without labels."""
        data = await self.api("query", query=expr)
        if data["resultType"] == "scalar":
            return [Sample({}, float(data["result"][1]))]
        if data["resultType"] != "vector":
            raise PrometheusError(f"{expr!r} returned a {data['resultType']}, not a vector")
        return [Sample(dict(r["metric"]), float(r["value"][1])) for r in data["result"]]

    async def value(self, expr: str) -> float | None:
        """The single value of ``expr``; None when the result is empty."""
        samples = await self.query(expr)
        if len(samples) > 1:
            raise PrometheusError(f"{expr!r} returned {len(samples)} series, not one")
        return samples[0].value if samples else None

    async def wait_for(
        self, expr: str, check: Callable[[list[Sample]], bool], within: float, what: str = ""
    ) -> list[Sample]:
        """Query ``expr`` until ``check`` accepts the result; fails after ``within`` seconds
        with the last result seen."""
        deadline = time.monotonic() + within
        last: list[Sample] | str = "no answer"
        while True:
            try:
                samples = await self.query(expr)
            except PrometheusError as exc:
                last = str(exc)
            else:
                if check(samples):
                    return samples
                last = samples
            if time.monotonic() >= deadline:
                raise PrometheusError(
                    f"timed out after {within}s waiting for {what or expr!r}; last: {last}"
                )
            await asyncio.sleep(0.2)

    async def wait_for_value(
        self, expr: str, check: Callable[[float], bool], within: float
    ) -> float:
        """``wait_for`` on a single-valued ``expr``; returns the accepted value."""

        def accepts(samples: list[Sample]) -> bool:
            return (
                len(samples) == 1 and not math.isnan(samples[0].value) and check(samples[0].value)
            )

        return (await self.wait_for(expr, accepts, within))[0].value

    async def targets_health(self) -> dict[str, str]:
        """``{job: health}`` of the active targets (``up``, ``down``, ``unknown``)."""
        data = await self.api("targets", state="active")
        return {t["labels"]["job"]: t["health"] for t in data["activeTargets"]}

    async def wait_for_targets_up(self, within: float) -> None:
        """Every configured target scraped successfully at least once."""
        jobs = {t.job for t in self.targets}
        deadline = time.monotonic() + within
        while True:
            health = await self.targets_health()
            if set(health) == jobs and all(h == "up" for h in health.values()):
                return
            if time.monotonic() >= deadline:
                raise PrometheusError(f"targets not up after {within}s: {health}")
            await asyncio.sleep(0.2)

    async def rules(self) -> list[dict[str, Any]]:
        """Every loaded rule (``/api/v1/rules``), groups flattened."""
        data = await self.api("rules")
        return [rule for group in data["groups"] for rule in group["rules"]]

    async def rule_health(self) -> dict[str, tuple[str, str]]:
        """``{rule name: (health, last error)}``; health is ``unknown`` until evaluated."""
        return {r["name"]: (r["health"], r.get("lastError", "")) for r in await self.rules()}

    async def wait_for_rules_evaluated(self, within: float) -> dict[str, tuple[str, str]]:
        """Every rule evaluated at least once; returns ``rule_health()``."""
        deadline = time.monotonic() + within
        while True:
            health = await self.rule_health()
            if health and all(h != "unknown" for h, _ in health.values()):
                return health
            if time.monotonic() >= deadline:
                raise PrometheusError(f"rules not evaluated after {within}s: {health}")
            await asyncio.sleep(0.2)


def promtool(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``promtool ARGS`` to its end, output captured (skips/fails without promtool)."""
    return subprocess.run(
        [require_promtool(), *args], capture_output=True, text=True, timeout=timeout, check=False
    )
