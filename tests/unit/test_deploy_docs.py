"""The deployment docs say what the code and the bench say: docs/sizing.md's figures are the last
``make bench``'s, docs/deploy-kubernetes.md's overlay example builds into valid resources, its
Secrets table names the Secrets the manifests read, and both pages are linked."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from bench.sizing_doc import RESULTS, block, markdown
from tests.support.deploy import KUSTOMIZE, ROOT, find, kustomize, schema_errors

DEPLOY_DOC = ROOT / "docs" / "deploy-kubernetes.md"
SIZING_DOC = ROOT / "docs" / "sizing.md"


def test_the_sizing_table_is_the_last_bench_run_s() -> None:
    report = json.loads(RESULTS.read_text(encoding="utf-8"))
    assert block() == markdown(report), "run: python -m bench.sizing_doc"


def overlay_example() -> str:
    text = DEPLOY_DOC.read_text(encoding="utf-8")
    blocks: list[str] = [
        b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if "kind: Kustomization" in b
    ]
    assert len(blocks) == 1
    return blocks[0]


@pytest.mark.timeout(180)
def test_the_overlay_example_builds_into_valid_resources(tmp_path: Path) -> None:
    tree = tmp_path / "kubernetes"
    shutil.copytree(KUSTOMIZE, tree)
    (tree / "mine").mkdir()
    (tree / "mine" / "kustomization.yaml").write_text(overlay_example(), encoding="utf-8")
    docs = kustomize(str(tree / "mine"))
    for doc in docs:
        assert schema_errors(doc) == [], doc["metadata"]["name"]
    scaled = find(docs, "ScaledObject")
    addresses = {t["metadata"]["serverAddress"] for t in scaled["spec"]["triggers"]}
    assert addresses == {"http://prometheus.monitoring:9090"}
    for kind in ("ServiceMonitor", "PrometheusRule"):
        for doc in (d for d in docs if d["kind"] == kind):
            assert doc["metadata"]["labels"]["release"] == "prometheus"
    images = {
        c["image"]
        for d in docs
        if d["kind"] == "Deployment"
        for c in d["spec"]["template"]["spec"]["containers"]
    }
    assert images == {"registry.internal/seen-worker:0.1.0"}


def secret_refs(node: Any) -> set[tuple[str, str]]:
    """Every (Secret, key) a resource reads: ``secretKeyRef`` and ServiceMonitor credentials."""
    found: set[tuple[str, str]] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("secretKeyRef", "credentials"):
                found.add((value["name"], value["key"]))
            else:
                found |= secret_refs(value)
    elif isinstance(node, list):
        for item in node:
            found |= secret_refs(item)
    return found


def test_the_secrets_table_names_what_the_manifests_read() -> None:
    text = DEPLOY_DOC.read_text(encoding="utf-8")
    table = set(re.findall(r"^\s*\| `([a-z-]+)` \| `([a-z-]+)` \|", text, re.M))
    read = secret_refs(kustomize("example"))
    assert len(read) == 4
    assert table == read


def test_both_pages_are_linked() -> None:
    for page in (ROOT / "README.md", ROOT / "docs" / "operations.md"):
        text = page.read_text(encoding="utf-8")
        assert "deploy-kubernetes.md" in text and "sizing.md" in text, page.name
    assert SIZING_DOC.exists() and DEPLOY_DOC.exists()
