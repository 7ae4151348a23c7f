"""``worker.http.hosts``: which Host and Origin a server of ours answers (DNS rebinding)."""

from __future__ import annotations

import pytest

from worker.http.hosts import HostPolicy, parse_host

pytestmark = pytest.mark.unit


def test_parse_host_forms() -> None:
    assert str(parse_host("LOCALHOST.:9470")) == "localhost:9470"
    assert str(parse_host("[::1]")) == "[::1]"
    assert str(parse_host("[::1]:80")) == "[::1]:80"
    bad_forms = ("", "::1", "[::1", "[::1]x", "[1.2.3.4]", "a..b", "-a.b", "x:", "x:99999")
    for bad in (*bad_forms, "x:-1", "a_b"):
        assert parse_host(bad) is None, bad


@pytest.mark.parametrize("bind", ["127.0.0.1", "0.0.0.0", "::", "::1"])  # noqa: S104
def test_hosts_loopback_and_ip_literals_pass_names_only_when_listed(bind: str) -> None:
    policy = HostPolicy(bind, ["dash.example.com", "ops.example:8443"], "x.allowed_hosts")
    for ok in (
        None,
        "localhost",
        "localhost:1",
        "127.0.0.1:9470",
        "[::1]:9470",
        "10.244.0.9:9464",
        "[fd00::9]",
        "dash.example.com",
        "dash.example.com:8080",
        "ops.example:8443",
    ):
        assert policy.allows_host(ok), ok
    for refused in ("evil.example", "evil.example:9470", "ops.example:8444", "ops.example", "x"):
        assert not policy.allows_host(refused), refused


def test_a_named_bind_is_one_of_ours() -> None:
    assert HostPolicy("myhost.lan", [], "s").allows_host("myhost.lan:9470")
    wildcard = "0.0.0.0"  # noqa: S104 - a bind address as text
    assert not HostPolicy(wildcard, [], "s").allows_host("myhost.lan:9470")


def test_origin_is_this_host_or_an_allowed_name() -> None:
    policy = HostPolicy("127.0.0.1", ["dash.example.com"], "dashboard.allowed_hosts")
    assert policy.origin_refusal("http://127.0.0.1:9470", "127.0.0.1:9470", "http") is None
    assert policy.origin_refusal("http://localhost", "localhost", "http") is None
    assert policy.origin_refusal("https://dash.example.com", "127.0.0.1:9470", "http") is None
    refusals = [
        ("http://evil.example:9470", "127.0.0.1:9470", "http"),
        ("http://evil.example:9470", "evil.example:9470", "http"),  # Host checked elsewhere
        ("http://127.0.0.1:9471", "127.0.0.1:9470", "http"),
        ("https://127.0.0.1:9470", "127.0.0.1:9470", "http"),
        ("http://10.0.0.9:9470", "127.0.0.1:9470", "http"),
        ("http://localhost:3000", "127.0.0.1:9470", "http"),
        ("ftp://dash.example.com", "127.0.0.1:9470", "http"),
        ("http://dash.example.com:bad", "127.0.0.1:9470", "http"),
    ]
    for origin, host, scheme in refusals:
        why = policy.origin_refusal(origin, host, scheme)
        assert why is not None and "foreign Origin" in why, (origin, host)
