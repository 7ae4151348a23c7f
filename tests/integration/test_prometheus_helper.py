"""tests/support/prometheus.py itself: the configuration it writes is one promtool accepts, it
starts Debian's Prometheus, answers queries and scrapes a target with a bearer token, and stops
its process within its bound."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.support.prometheus import (
    PrometheusError,
    PrometheusServer,
    ScrapeTarget,
    promtool,
    require_prometheus,
)


def test_the_written_configuration_passes_promtool(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(
        yaml.safe_dump({"groups": [{"name": "g", "rules": [{"record": "r", "expr": "up"}]}]})
    )
    targets = [
        ScrapeTarget("plain", "127.0.0.1:1"),
        ScrapeTarget("tokened", "127.0.0.1:2", bearer_token="secret", labels={"x": "y"}),
    ]
    server = PrometheusServer(tmp_path, targets, rule_files=[rules], binary="prometheus")
    out = promtool("check", "config", str(server.config_file()))
    assert out.returncode == 0, out.stdout + out.stderr
    tokened = server.config()["scrape_configs"][1]
    token_file = Path(tokened["authorization"]["credentials_file"])
    assert token_file.read_text() == "secret"


@pytest.mark.timeout(120)
async def test_it_starts_scrapes_with_a_token_queries_and_stops(tmp_path: Path) -> None:
    require_prometheus()
    first = PrometheusServer(tmp_path / "a", [])
    (tmp_path / "a").mkdir()
    async with first as prom:
        assert await prom.value("vector(42)") == 42
        assert await prom.query("absent_series_name") == []
        with pytest.raises(PrometheusError):
            await prom.query("this is not promql")
        with pytest.raises(PrometheusError, match="timed out"):
            await prom.wait_for_value("vector(1)", lambda v: v == 2, within=0.5)
        # a second Prometheus scrapes the first one's own /metrics (no token needed there,
        # but one is sent: the target must still be up)
        (tmp_path / "b").mkdir()
        addr = prom.url.removeprefix("http://")
        target = ScrapeTarget("other", addr, bearer_token="unused")
        async with PrometheusServer(tmp_path / "b", [target]) as second:
            await second.wait_for_targets_up(within=60)
            up = await second.wait_for_value('up{job="other"}', lambda v: v == 1, within=30)
            assert up == 1
        assert second.proc is not None and second.proc.poll() is not None
    assert first.proc is not None and first.proc.poll() is not None  # aclose() ended it
