"""Docker cannot run here: check the fields of the Dockerfile and compose file instead."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


def dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
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
    flags = dragonfly["command"]
    for flag in (
        "--logtostderr",
        "--proactor_threads=2",
        "--cluster_mode=emulated",
        "--lock_on_hashtags",
    ):
        assert flag in flags
    assert not any("cache_mode" in f for f in flags), "locks and jobs must not be evicted"
    test = dragonfly["healthcheck"]["test"]
    assert "redis-cli" in test
    assert "ping" in test


def test_compose_worker_waits_for_healthy_dragonfly() -> None:
    worker = compose()["services"]["worker"]
    assert worker["environment"]["SEEN_CACHE_ADDR"] == "dragonfly:6379"
    assert worker["depends_on"]["dragonfly"]["condition"] == "service_healthy"
    assert worker.get("build") or worker.get("image")


def test_docker_context_has_what_the_dockerfile_copies() -> None:
    for source in re.findall(r"^COPY (?!--from)(?:--\S+ )*(.+) \S+$", dockerfile(), re.MULTILINE):
        for name in source.split():
            assert (ROOT / name).exists(), f"Dockerfile copies missing {name}"
