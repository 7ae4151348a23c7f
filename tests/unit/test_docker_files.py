"""Docker cannot run here: check the fields of the Dockerfile and compose file instead.

Compose's own reading is reproduced where it matters: the file is validated against the
Compose specification (check-jsonschema's vendored schema), and its variables are interpolated
by the specification's rules (``tests.support.compose``), so "compose refuses to start without
a password" is shown by interpolating with and without it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.compose import ComposeError, interpolate, references
from tests.support.deploy import (
    COMPOSE,
    SECRET_NAME,
    documented_dragonfly_flags,
    flags,
    setting_env_names,
    settings_of,
)
from tests.support.deploy import compose as compose_file

ROOT = Path(__file__).resolve().parents[2]
SECRETS = {
    "SEEN_CACHE_PASSWORD": "p" * 64,
    "SEEN_DASHBOARD_TOKEN": "t" * 64,
    "SEEN_DASHBOARD_METRICS_TOKEN": "m" * 64,
}
"""The variables an operator must export before ``docker compose up``."""
OUR_SERVICES = ("worker", "dashboard")


def dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


def compose() -> dict[str, Any]:
    """The compose file as ``docker compose up`` reads it with the secrets exported."""
    data: dict[str, Any] = interpolate(compose_file(), SECRETS)
    return data


def test_dockerfile_is_multi_stage_slim_and_non_root() -> None:
    text = dockerfile()
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\w+))?", text, re.MULTILINE)
    assert len(stages) >= 2
    assert all("slim" in image for image, _ in stages)
    assert "COPY --from=build" in text
    users = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
    assert users
    assert users[-1] not in ("root", "0")


def test_dockerfile_installs_from_the_lock_file() -> None:
    text = dockerfile()
    assert "uv.lock" in text
    assert re.search(r"uv sync --locked", text)
    assert "pip install -r" not in text


PROBE = ["python", "-m", "worker.http.probe"]


def test_dockerfile_healthcheck_asks_the_workers_readyz() -> None:
    match = re.search(r"^HEALTHCHECK .*\n?\s*CMD (.+)$", dockerfile(), re.MULTILINE)
    assert match is not None
    assert json.loads(match.group(1)) == PROBE
    assert 'HEALTHCHECK CMD ["seen-worker", "health", "--this-host"]' in dockerfile()  # [http] off


def test_compose_worker_healthcheck_asks_its_readyz() -> None:
    check = compose()["services"]["worker"]["healthcheck"]
    assert check["test"] == ["CMD", *PROBE]
    assert float(check["timeout"].rstrip("s")) > 5  # the probe's own timeout is 5 s


def test_compose_dragonfly_flags_and_healthcheck() -> None:
    dragonfly = compose()["services"]["dragonfly"]
    assert "dragonfly" in dragonfly["image"]
    given = flags(dragonfly["command"], dragonfly["environment"])
    assert "cache_mode" not in given, "locks and jobs must not be evicted"
    assert given["requirepass"] == SECRETS["SEEN_CACHE_PASSWORD"]
    assert given["cluster_mode"] == "emulated"
    documented = documented_dragonfly_flags() - {"cache_mode"}
    assert documented <= set(given), f"docs/dragonfly.md flags missing: {documented - set(given)}"
    test = dragonfly["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL" and "redis-cli ping" in test[1] and "PONG" in test[1]
    # redis-cli authenticates from REDISCLI_AUTH: without the password the check fails
    assert dragonfly["environment"]["REDISCLI_AUTH"] == SECRETS["SEEN_CACHE_PASSWORD"]


def test_compose_services_wait_for_healthy_dragonfly() -> None:
    for name in OUR_SERVICES:
        service = compose()["services"][name]
        assert service["environment"]["SEEN_CACHE_ADDR"] == "dragonfly:6379"
        assert service["depends_on"]["dragonfly"]["condition"] == "service_healthy"
        assert service.get("build") or service.get("image")


def test_compose_matches_the_compose_specification() -> None:
    checker = Path(sys.executable).with_name("check-jsonschema")
    out = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def published(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host address, container port) of every port a service publishes (short and long
    syntax; no address means every interface)."""
    out = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            out.append((str(port.get("host_ip", "0.0.0.0")), str(port["target"])))  # noqa: S104
            continue
        parts = str(port).split(":")
        host = parts[0] if len(parts) == 3 else "0.0.0.0"  # noqa: S104 - what Docker does
        out.append((host, parts[-1].split("/")[0]))
    return out


def test_compose_publishes_only_on_loopback() -> None:
    services = compose()["services"]
    for name, service in services.items():
        for host, _ in published(service):
            assert host in ("127.0.0.1", "::1"), f"{name} is published on {host}"
    assert published(services["dragonfly"]) == [("127.0.0.1", "6379")]
    assert published(services["dashboard"]) == [("127.0.0.1", "9470")]
    assert published(services["worker"]) == []  # --scale would clash on a host port


def test_the_published_checker_sees_every_interface() -> None:
    assert published({"ports": ["6379:6379"]}) == [("0.0.0.0", "6379")]  # noqa: S104
    assert published({"ports": ["6379"]}) == [("0.0.0.0", "6379")]  # noqa: S104
    assert published({"ports": [{"target": 6379, "published": 6379}]}) == [("0.0.0.0", "6379")]  # noqa: S104


@pytest.mark.parametrize("missing", sorted(SECRETS))
@pytest.mark.parametrize("empty", [False, True])
def test_compose_refuses_to_start_without_each_secret(missing: str, empty: bool) -> None:
    env = {k: v for k, v in SECRETS.items() if k != missing}
    if empty:
        env[missing] = ""
    with pytest.raises(ComposeError, match=missing):
        interpolate(compose_file(), env)


def test_no_secret_has_a_default_or_a_literal_value() -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    refs = references(text)
    assert {r.name for r in refs} >= set(SECRETS)
    for ref in refs:
        if SECRET_NAME.search(ref.name):
            assert ref.op == ":?", f"${{{ref.name}}} must be ${{{ref.name}:?...}}"
            assert ref.name in SECRETS
    for name, service in compose_file()["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if SECRET_NAME.search(key):
                assert str(value).startswith("${") and ":?" in str(value), f"{name}: {key}"


def test_the_interpolation_follows_compose_rules() -> None:
    env = {"SET": "v", "EMPTY": ""}
    assert interpolate("$$SET ${SET} $SET", env) == "$SET v v"
    assert interpolate("${EMPTY:-d} ${EMPTY-d} ${UNSET-d}", env) == "d  d"
    assert interpolate("${SET:+x} ${EMPTY:+x} ${EMPTY+x}", env) == "x  x"
    with pytest.raises(ComposeError):
        interpolate("${EMPTY:?needed}", env)
    assert interpolate("${EMPTY?needed}", env) == ""


def test_every_service_uses_the_store_password() -> None:
    services = compose()["services"]
    password = SECRETS["SEEN_CACHE_PASSWORD"]
    assert services["dragonfly"]["environment"]["DFLY_requirepass"] == password
    assert "requirepass" not in " ".join(services["dragonfly"]["command"])  # not in `ps`
    for name in OUR_SERVICES:
        assert services[name]["environment"]["SEEN_CACHE_PASSWORD"] == password


@pytest.mark.parametrize("name", OUR_SERVICES)
def test_compose_seen_variables_are_settings_and_load(name: str) -> None:
    env = {k: str(v) for k, v in compose()["services"][name]["environment"].items()}
    unknown = {k for k in env if k.startswith("SEEN_")} - setting_env_names()
    assert not unknown, f"{name}: not settings: {unknown}"
    settings = settings_of(env)
    assert settings.queue.layout == "sharded"
    threads = int(flags(compose()["services"]["dragonfly"]["command"])["proactor_threads"])
    assert settings.queue.shards % threads == 0


def test_compose_dashboard_needs_its_tokens_and_stays_on_loopback() -> None:
    dashboard = compose()["services"]["dashboard"]
    assert dashboard["command"] == ["dashboard"]
    settings = settings_of({k: str(v) for k, v in dashboard["environment"].items()})
    assert settings.dashboard.host_port() == ("0.0.0.0", 9470)  # noqa: S104 - in its container
    assert settings.dashboard.token is not None and settings.dashboard.metrics_token is not None
    assert "/livez" in " ".join(dashboard["healthcheck"]["test"])


def test_compose_worker_stops_within_its_grace() -> None:
    worker = compose()["services"]["worker"]
    grace = settings_of({k: str(v) for k, v in worker["environment"].items()}).worker
    assert float(worker["stop_grace_period"].rstrip("s")) > grace.shutdown_grace + 5


def test_dockerfile_exposes_the_default_ports() -> None:
    (line,) = re.findall(r"^EXPOSE (.+)$", dockerfile(), re.MULTILINE)
    defaults = settings_of({})
    wanted = {defaults.http.host_port()[1], defaults.dashboard.host_port()[1]}
    assert {int(p) for p in line.split()} == wanted


def test_docker_context_has_what_the_dockerfile_copies() -> None:
    for source in re.findall(r"^COPY (?!--from)(?:--\S+ )*(.+) \S+$", dockerfile(), re.MULTILINE):
        for name in source.split():
            assert (ROOT / name).exists(), f"Dockerfile copies missing {name}"
