"""``[http]``: the address is checked where it enters, an empty token means none."""

from __future__ import annotations

import pytest

from worker.http.server import is_loopback
from worker.settings import SettingsError, load_settings

pytestmark = pytest.mark.unit


def test_defaults_bind_loopback_only() -> None:
    http = load_settings().http
    assert http.enabled and http.metrics_token is None
    host, port = http.host_port()
    assert is_loopback(host) and port == 9464


@pytest.mark.parametrize("addr", ["9464", "localhost:", ":9464", "host:70000", "host:-1"])
def test_bad_addr_names_the_setting(addr: str) -> None:
    with pytest.raises(SettingsError, match=r"http\.addr"):
        load_settings(http={"addr": addr})


def test_port_zero_ipv6_and_blank_token(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings(http={"addr": "127.0.0.1:0"}).http.host_port() == ("127.0.0.1", 0)
    assert load_settings(http={"addr": "[::1]:9464"}).http.host_port() == ("::1", 9464)
    monkeypatch.setenv("SEEN_HTTP_METRICS_TOKEN", "  ")
    assert load_settings().http.metrics_token is None
    monkeypatch.setenv("SEEN_HTTP_METRICS_TOKEN", "t0ken")
    token = load_settings().http.metrics_token
    assert token is not None and token.get_secret_value() == "t0ken"
    monkeypatch.setenv("SEEN_HTTP_METRICS_TOKEN", "t0ken\n")  # as read from a file
    token = load_settings().http.metrics_token
    assert token is not None and token.get_secret_value() == "t0ken"


def test_loopback_hosts() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.8.9.1", "::1", "localhost"))
    anywhere = ("0.0.0.0", "::", "10.0.0.5", "example.org")  # noqa: S104 (only a string)
    assert not any(is_loopback(h) for h in anywhere)


def test_dashboard_token_from_a_file_loses_its_newline_and_must_be_long() -> None:
    token = load_settings(dashboard={"token": "k" * 40 + "\n"}).dashboard.token
    assert token is not None and token.get_secret_value() == "k" * 40
    with pytest.raises(SettingsError, match="at least 32 bytes"):
        load_settings(dashboard={"token": "short\n"})


@pytest.mark.parametrize("section", ["http", "dashboard"])
@pytest.mark.parametrize(
    "entry", ["", "*.example.com", "https://dash.example.com", "dash.example.com/x", "a b", "x:0"]
)
def test_bad_allowed_host_names_the_setting(section: str, entry: str) -> None:
    overrides: dict[str, object] = {section: {"allowed_hosts": [entry]}}
    with pytest.raises(SettingsError, match=rf"{section}\.allowed_hosts"):
        load_settings(None, **overrides)


def test_allowed_hosts_are_normalised_and_read_from_json_env(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hosts = ["Dash.Example.COM.", "worker:9464", "[FD00::1]:9470", "10.0.0.5"]
    got = load_settings(dashboard={"allowed_hosts": hosts}).dashboard.allowed_hosts
    assert got == ("dash.example.com", "worker:9464", "[fd00::1]:9470", "10.0.0.5")
    monkeypatch.setenv("SEEN_HTTP_ALLOWED_HOSTS", '["prometheus-target.internal"]')
    assert load_settings().http.allowed_hosts == ("prometheus-target.internal",)
    assert load_settings().dashboard.allowed_hosts == ()
