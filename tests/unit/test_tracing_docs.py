"""docs/tracing.md and its collector example say what the code does: the example is a
Collector configuration whose pipeline names only components it defines and listens where the
workers send; the span table names the spans the worker makes, and the settings it shows
are accepted."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.support.imports import ROOT
from worker.settings import load_settings

pytestmark = pytest.mark.unit

DOC = ROOT / "docs" / "tracing.md"
COLLECTOR = ROOT / "docs" / "otel-collector.yaml"
SPAN_SOURCES = ("worker/engine/job_spans.py", "jobs/progress.py")


def collector() -> dict[str, Any]:
    config = yaml.safe_load(COLLECTOR.read_text())
    assert isinstance(config, dict)
    return config


def test_the_collector_pipeline_names_only_defined_components() -> None:
    config = collector()
    traces = config["service"]["pipelines"]["traces"]
    for kind in ("receivers", "processors", "exporters"):
        assert traces[kind], kind
        assert set(traces[kind]) <= set(config[kind]), kind
    assert set(config["service"]["extensions"]) <= set(config["extensions"])


def test_the_collector_listens_where_the_docs_send_the_workers() -> None:
    http = collector()["receivers"]["otlp"]["protocols"]["http"]
    assert http["endpoint"].endswith(":4318")
    commands = re.findall(r"SEEN_OTEL_ENDPOINT=(\S+)", DOC.read_text() + COLLECTOR.read_text())
    assert commands
    for endpoint in commands:
        assert load_settings(otel={"enabled": True, "endpoint": endpoint}).otel.endpoint
        assert endpoint.endswith(":4318/v1/traces")


def test_the_span_table_names_the_spans_the_worker_makes() -> None:
    documented = set(
        re.findall(r"^\| `(seen\.[a-z_.]+)(?: <function>)?` \|", DOC.read_text(), re.M)
    )
    source = "\n".join((ROOT / p).read_text() for p in SPAN_SOURCES)
    made = set(
        re.findall(r'"(seen\.(?:job|claim|finish|progress\.[a-z_]+|dead_letter))[ "]', source)
    )
    assert documented == made, (documented, made)
