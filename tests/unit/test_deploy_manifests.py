"""deploy/kubernetes: it builds, every resource passes its schema, and the rules of a safe,
consistent deployment hold (docs/deploy-kubernetes.md).

Built with kubectl's kustomize (``base`` alone, and ``example``: base + monitoring +
autoscaling). Built-in kinds are validated strictly (no unknown field) against the Kubernetes
schemas of the ``kubernetes-validate`` package, for the newest version it ships and for 1.30
(the oldest we claim); KEDA's and prometheus-operator's resources against their CRD schemas in
deploy/schemas/. The KEDA trigger's queries are evaluated by a real Prometheus in
tests/integration/test_deploy_autoscaling.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.deploy import (
    ROOT,
    SECRET_NAME,
    SECRET_REF,
    container,
    container_env,
    cpu_cores,
    crd_errors,
    documented_dragonfly_flags,
    find,
    flags,
    k8s_error,
    kustomize,
    latest_kubernetes,
    memory_bytes,
    pod_spec,
    schema_errors,
    secret_ref,
    setting_env_names,
    settings_of,
    sizing,
)
from tests.support.fleet_series import exported_sample_names, named_series
from tests.support.prometheus import promtool
from worker.settings import SettingsError

BUILDS = ("base", "example")
WORKLOADS = ("seen-worker", "seen-dashboard")


def example() -> list[dict[str, Any]]:
    return kustomize("example")


@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.timeout(180)
def test_every_resource_passes_its_schema(build: str) -> None:
    docs = kustomize(build)
    assert docs
    for doc in docs:
        assert schema_errors(doc) == [], f"{build}: {doc['kind']} {doc['metadata']['name']}"


def test_the_schema_checks_refuse_an_unknown_field() -> None:
    docs = example()
    deployment = json.loads(json.dumps(find(docs, "Deployment", "seen-worker")))
    deployment["spec"]["replica"] = 2
    assert k8s_error(deployment, latest_kubernetes()) is not None
    scaled = json.loads(json.dumps(find(docs, "ScaledObject")))
    scaled["spec"]["maxReplicas"] = 3
    assert crd_errors(scaled)
    monitor = json.loads(json.dumps(find(docs, "ServiceMonitor", "seen-fleet")))
    monitor["spec"]["endpoints"][0]["scrapeTimeOut"] = "5s"
    assert crd_errors(monitor)
    scaled = json.loads(json.dumps(find(docs, "ScaledObject")))
    scaled["spec"]["triggers"][0]["metadata"]["threshold"] = 5000  # KEDA wants strings
    assert crd_errors(scaled)


@pytest.mark.parametrize("name", WORKLOADS)
def test_every_seen_variable_is_a_setting_and_the_settings_load(name: str) -> None:
    docs = example()
    env = container_env(docs, container(find(docs, "Deployment", name)))
    unknown = {k for k in env if k.startswith("SEEN_")} - setting_env_names()
    assert not unknown, f"{name}: not settings: {unknown}"
    settings = settings_of(env)  # raises as the process would on a bad value
    assert settings.queue.layout == "sharded"


def test_secrets_come_from_secrets_only() -> None:
    docs = example()
    for doc in docs:
        if doc["kind"] == "ConfigMap":
            assert not [k for k in doc["data"] if SECRET_NAME.search(k)], doc["metadata"]
        if doc["kind"] in ("Deployment", "StatefulSet"):
            for spec in pod_spec(doc)["containers"]:
                for item in spec.get("env", []):
                    if SECRET_NAME.search(item["name"]):
                        assert "secretKeyRef" in item.get("valueFrom", {}), item
    for name in WORKLOADS:
        env = container_env(docs, container(find(docs, "Deployment", name)))
        assert {k: v for k, v in env.items() if SECRET_NAME.search(k)} == {
            k: SECRET_REF for k in env if SECRET_NAME.search(k)
        }
    assert not [d for d in docs if d["kind"] == "Secret"], "no secret value is committed"


def test_the_worker_is_probed_and_stops_within_its_grace() -> None:
    docs = example()
    worker = find(docs, "Deployment", "seen-worker")
    spec = container(worker)
    settings = settings_of(container_env(docs, spec))
    host, port = settings.http.host_port()
    assert host == "0.0.0.0"  # noqa: S104 - kubelet and Prometheus reach the pod's address
    ports = {p["name"]: p["containerPort"] for p in spec["ports"]}
    for probe, path in (("livenessProbe", "/livez"), ("readinessProbe", "/readyz")):
        get = spec[probe]["httpGet"]
        assert get["path"] == path
        assert ports[get["port"]] == port
    assert spec["startupProbe"]["httpGet"]["path"] == "/livez"
    startup = spec["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] > settings.worker.startup_timeout
    grace = pod_spec(worker)["terminationGracePeriodSeconds"]
    assert grace > settings.worker.shutdown_grace + 5, "Kubernetes would SIGKILL a clean stop"
    dashboard = container(find(docs, "Deployment", "seen-dashboard"))
    dash_settings = settings_of(container_env(docs, dashboard))
    assert dashboard["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert {p["containerPort"] for p in dashboard["ports"]} == {
        dash_settings.dashboard.host_port()[1]
    }


def test_resources_are_sized_from_the_bench() -> None:
    """Requests hold what the bench measured under load, limits leave room above it."""
    docs = example()
    figures = sizing()
    measured = {
        "seen-worker": figures["sizing.worker_process"],
        "seen-dashboard": figures["sizing.dashboard_process"],
    }
    peak = {"seen-worker": "load", "seen-dashboard": "scrape"}
    for name in WORKLOADS:
        resources = container(find(docs, "Deployment", name))["resources"]
        loaded_mb = measured[name][f"{peak[name]}_rss_mb_max"]
        request = memory_bytes(resources["requests"]["memory"]) / 2**20
        limit = memory_bytes(resources["limits"]["memory"]) / 2**20
        assert request >= 1.5 * loaded_mb, f"{name}: memory request {request} MiB"
        assert limit >= 2 * request or limit >= 3 * loaded_mb, f"{name}: memory limit {limit} MiB"
        cpu_needed = measured[name][f"{peak[name]}_cpu_pct_max"] / 100
        assert cpu_cores(resources["limits"]["cpu"]) >= cpu_needed, f"{name}: throttled at load"
        assert cpu_cores(resources["requests"]["cpu"]) > 0


def test_a_disruption_takes_at_most_one_worker() -> None:
    docs = example()
    budget = find(docs, "PodDisruptionBudget", "seen-worker")
    labels = pod_spec_labels(find(docs, "Deployment", "seen-worker"))
    assert budget["spec"]["maxUnavailable"] == 1
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()


def pod_spec_labels(workload: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


def test_dragonfly_runs_with_the_documented_flags_and_a_password() -> None:
    docs = example()
    store = find(docs, "StatefulSet", "seen-dragonfly")
    spec = container(store)
    given = flags(spec["args"], container_env(docs, spec))
    assert "cache_mode" not in given, "jobs and locks must not be evicted"
    documented = documented_dragonfly_flags() - {"cache_mode"}
    assert documented <= set(given), f"docs/dragonfly.md flags missing: {documented - set(given)}"
    assert given["cluster_mode"] == "emulated"
    threads = int(given["proactor_threads"])
    assert threads == cpu_cores(spec["resources"]["requests"]["cpu"])
    maxmemory = memory_bytes(given["maxmemory"])
    assert maxmemory >= threads * 256 * 2**20
    assert maxmemory < memory_bytes(spec["resources"]["limits"]["memory"])
    assert secret_ref(spec, "DFLY_requirepass") == ("seen-store", "password")
    for name in WORKLOADS:
        worker = container(find(docs, "Deployment", name))
        assert secret_ref(worker, "SEEN_CACHE_PASSWORD") == ("seen-store", "password")


def test_the_queue_layout_is_sharded_over_the_store_threads() -> None:
    docs = example()
    threads = int(
        flags(container(find(docs, "StatefulSet", "seen-dragonfly"))["args"])["proactor_threads"]
    )
    for name in WORKLOADS:
        settings = settings_of(container_env(docs, container(find(docs, "Deployment", name))))
        assert settings.queue.layout == "sharded"
        assert settings.queue.shards % threads == 0
        assert settings.cache.addr.startswith("seen-dragonfly:")


def test_only_the_deployment_reaches_the_store() -> None:
    docs = example()
    service = find(docs, "Service", "seen-dragonfly")
    assert service["spec"].get("type", "ClusterIP") == "ClusterIP"
    policy = find(docs, "NetworkPolicy", "seen-dragonfly")
    store_labels = pod_spec_labels(find(docs, "StatefulSet", "seen-dragonfly"))
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= store_labels.items()
    (rule,) = policy["spec"]["ingress"]
    (source,) = rule["from"]
    allowed = source["podSelector"]["matchLabels"]
    for name in WORKLOADS:
        assert allowed.items() <= pod_spec_labels(find(docs, "Deployment", name)).items()
    for doc in docs:
        if doc["kind"] == "Service":
            assert doc["spec"].get("type", "ClusterIP") == "ClusterIP", doc["metadata"]["name"]


def test_the_workers_scale_on_the_fleet_exporter_s_queue_series() -> None:
    docs = example()
    scaled = find(docs, "ScaledObject")["spec"]
    worker = find(docs, "Deployment", "seen-worker")
    assert scaled["scaleTargetRef"]["name"] == worker["metadata"]["name"]
    assert "replicas" not in worker["spec"], "KEDA owns the count; apply would reset it"
    assert 1 <= scaled["minReplicaCount"] <= scaled["maxReplicaCount"]
    queue = settings_of(container_env(docs, container(worker))).queue.name
    exported = exported_sample_names()
    named: set[str] = set()
    for trigger in scaled["triggers"]:
        assert trigger["type"] == "prometheus"
        assert trigger["metricType"] == "AverageValue"  # KEDA's fallback needs it
        meta = trigger["metadata"]
        assert float(meta["threshold"]) > 0
        assert meta["ignoreNullValues"] == "false", "an exporter outage must not read as 0"
        assert named_series(meta["query"]) <= exported, meta["query"]
        assert f'queue="{queue}"' in meta["query"]
        named |= named_series(meta["query"])
    assert named == {"seen_fleet_queue_jobs", "seen_fleet_oldest_job_age_seconds"}
    assert scaled["fallback"]["replicas"] >= scaled["minReplicaCount"]


def test_a_full_fleet_s_connections_fit_the_store() -> None:
    """At maxReplicaCount, every worker's pools full, plus the dashboard's: below the store's
    client limit (Dragonfly --maxclients, 64000 unless set)."""
    docs = example()
    scaled = find(docs, "ScaledObject")["spec"]
    worker = settings_of(container_env(docs, container(find(docs, "Deployment", "seen-worker"))))
    per_worker = 2 * worker.cache.max_connections + worker.warmup.pool_connections  # queue+cache
    dashboard = 2 * worker.cache.max_connections
    limit = int(
        flags(container(find(docs, "StatefulSet", "seen-dragonfly"))["args"]).get(
            "maxclients", 64000
        )
    )
    assert scaled["maxReplicaCount"] * per_worker + dashboard < limit


def test_the_prometheus_rule_is_docs_alerts() -> None:
    rule = find(example(), "PrometheusRule", "seen-worker")
    alerts = yaml.safe_load((ROOT / "docs" / "alerts.yml").read_text(encoding="utf-8"))
    assert rule["spec"] == alerts


def test_each_service_monitor_scrapes_a_service_with_the_token_its_pods_use() -> None:
    docs = example()
    token_of = {
        "seen-worker": "SEEN_HTTP_METRICS_TOKEN",
        "seen-dashboard": "SEEN_DASHBOARD_METRICS_TOKEN",
    }
    for monitor in (d for d in docs if d["kind"] == "ServiceMonitor"):
        wanted = monitor["spec"]["selector"]["matchLabels"]
        services = [
            d
            for d in docs
            if d["kind"] == "Service" and wanted.items() <= d["metadata"].get("labels", {}).items()
        ]
        assert len(services) == 1, monitor["metadata"]["name"]
        service = services[0]["spec"]
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint["port"] in {p["name"] for p in service["ports"]}
        workload = next(
            d
            for d in docs
            if d["kind"] == "Deployment"
            and service["selector"].items() <= pod_spec_labels(d).items()
        )
        credentials = endpoint["authorization"]["credentials"]
        expected = secret_ref(container(workload), token_of[workload["metadata"]["name"]])
        assert (credentials["name"], credentials["key"]) == expected


def test_promtool_accepts_the_alert_rules(tmp_path: Path) -> None:
    rule = find(example(), "PrometheusRule", "seen-worker")
    from_manifest = tmp_path / "rules.yml"
    from_manifest.write_text(yaml.safe_dump(rule["spec"]), encoding="utf-8")
    for path in (ROOT / "docs" / "alerts.yml", from_manifest):
        out = promtool("check", "rules", str(path))
        assert out.returncode == 0, out.stdout + out.stderr
        assert "SUCCESS" in out.stdout


def service_link_env(docs: list[dict[str, Any]]) -> dict[str, str]:
    """The variables Kubernetes injects for every Service of the namespace when a pod keeps
    ``enableServiceLinks`` on: ``<NAME>_PORT=tcp://...`` and more, named after the Service."""
    env = {}
    for service in (d for d in docs if d["kind"] == "Service"):
        name = service["metadata"]["name"].upper().replace("-", "_")
        for port in service["spec"]["ports"]:
            env[f"{name}_SERVICE_HOST"] = "10.0.0.1"
            env[f"{name}_SERVICE_PORT"] = str(port["port"])
            env[f"{name}_PORT"] = f"tcp://10.0.0.1:{port['port']}"
    return env


def test_service_links_are_off_because_they_would_stop_the_workers() -> None:
    """Service links would hand every pod a variable named after Service seen-dashboard plus
    ``_PORT`` (and more): a name in a settings section, which stops start-up as a misspelt
    setting."""
    docs = example()
    for name in WORKLOADS:
        workload = find(docs, "Deployment", name)
        assert pod_spec(workload)["enableServiceLinks"] is False, name
        env = container_env(docs, container(workload))
        with pytest.raises(SettingsError, match="SEEN_DASHBOARD"):
            settings_of({**env, **service_link_env(docs)})
