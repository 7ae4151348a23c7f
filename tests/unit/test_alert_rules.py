"""docs/alerts.yml is a Prometheus rule file whose expressions name only series that exist.

The series names come from the fleet exporter itself (``tests.support.fleet_series``), so a
renamed series breaks this test.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tests.support.fleet_series import SERIES, exported_sample_names

DOCS = Path(__file__).resolve().parents[2] / "docs"
RULES = DOCS / "alerts.yml"


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_the_rule_file_has_the_prometheus_shape() -> None:
    document = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    assert set(document) == {"groups"}
    for group in document["groups"]:
        assert set(group) == {"name", "rules"} and group["rules"]
    names = [rule["alert"] for rule in rules()]
    assert len(names) == len(set(names))
    for rule in rules():
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
        assert isinstance(rule["expr"], str) and rule["expr"].strip()
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"]
        if "for" in rule:
            assert re.fullmatch(r"\d+[smh]", rule["for"])


def test_every_expression_names_only_exported_series() -> None:
    exported = exported_sample_names()
    named = set()
    for rule in rules():
        for name in SERIES.findall(rule["expr"]):
            assert name in exported, f"{rule['alert']}: {name} is not exported"
            named.add(name)
    # the four conditions docs/operations.md promises
    assert {
        "seen_fleet_workers",
        "seen_fleet_oldest_job_age_seconds",
        "seen_fleet_dead_letters",
        "seen_fleet_cron_last_success_timestamp_seconds",
    } <= named


def test_the_checker_refuses_an_unknown_series() -> None:
    exported = exported_sample_names()
    assert "seen_fleet_workers" in exported and "seen_fleet_jobs_total" in exported
    assert "seen_fleet_workers_total" not in exported
    assert set(SERIES.findall("rate(seen_fleet_nope[5m]) > 0")) == {"seen_fleet_nope"}


def test_the_fleet_section_s_yaml_examples_parse() -> None:
    text = (DOCS / "operations.md").read_text(encoding="utf-8")
    section = text.split("### Fleet metrics (dashboard exporter)", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```yaml\n(.*?)```", section, flags=re.S)
    assert blocks
    for block in blocks:
        config = yaml.safe_load(block)
        jobs = {job["job_name"]: job for job in config["scrape_configs"]}
        assert {"seen-worker", "seen-fleet"} <= set(jobs)
        for job in jobs.values():
            assert job["authorization"]["type"] == "Bearer"
            assert job["authorization"]["credentials_file"]
