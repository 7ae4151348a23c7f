"""``[otel]``: off by default, every value checked where it enters, on only with the extra."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.imports import ROOT
from worker.settings import SettingsError, load_settings

pytestmark = pytest.mark.unit


def test_off_by_default_and_on_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    otel = load_settings().otel
    assert (otel.enabled, otel.endpoint, otel.sample_ratio) == (False, None, 0.0)
    monkeypatch.setenv("SEEN_OTEL_ENABLED", "true")
    monkeypatch.setenv("SEEN_OTEL_ENDPOINT", "https://collector.internal/v1/traces")
    monkeypatch.setenv("SEEN_OTEL_SAMPLE_RATIO", "0.25")
    otel = load_settings().otel
    assert otel.enabled and otel.sample_ratio == 0.25
    assert otel.endpoint == "https://collector.internal/v1/traces"


@pytest.mark.parametrize(
    ("endpoint", "message"),
    [
        ("collector:4318", "http:// or https:// URL"),
        ("grpc://collector:4317/v1/traces", "http:// or https:// URL"),
        ("http:///v1/traces", "http:// or https:// URL"),
        ("http://user:key@collector:4318/v1/traces", "OTEL_EXPORTER_OTLP_HEADERS"),
        ("http://collector:4318", r"full traces URL, e\.g\. http://collector:4318/v1/traces"),
        ("http://collector:4318/", "full traces URL"),
    ],
)
def test_a_bad_endpoint_names_the_setting(endpoint: str, message: str) -> None:
    with pytest.raises(SettingsError, match=rf"otel\.endpoint: .*{message}.*SEEN_OTEL_ENDPOINT"):
        load_settings(otel={"endpoint": endpoint})


@pytest.mark.parametrize("ratio", [-0.1, 1.5, float("nan")])
def test_sample_ratio_is_a_share(ratio: float) -> None:
    with pytest.raises(SettingsError, match=r"otel\.sample_ratio"):
        load_settings(otel={"sample_ratio": ratio})


def test_an_unknown_key_is_an_error_with_a_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SettingsError, match=r"otel\.endpont.*did you mean otel\.endpoint"):
        load_settings(otel={"endpont": "http://collector:4318/v1/traces"})
    monkeypatch.setenv("SEEN_OTEL_ENABLE", "true")
    with pytest.raises(SettingsError, match="SEEN_OTEL_ENABLED"):
        load_settings()


WITHOUT_THE_EXTRA = """
import sys
sys.modules["opentelemetry"] = None  # the base install: no OpenTelemetry
from worker.settings import SettingsError, load_settings
assert load_settings().otel.enabled is False  # off: nothing is needed
try:
    load_settings(otel={"enabled": True})
except SettingsError as exc:
    print(exc)
"""


@pytest.mark.timeout(30)
def test_on_without_the_extra_is_refused_naming_it() -> None:
    out = subprocess.run(
        [sys.executable, "-c", WITHOUT_THE_EXTRA],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=25,
    )
    assert out.returncode == 0, out.stderr
    assert "setting otel.enabled: needs the otel extra (missing: opentelemetry.sdk" in out.stdout
    assert (
        "pip install 'seen-worker[otel]' (file key 'otel.enabled' or env SEEN_OTEL_ENABLED)"
        in out.stdout
    )
