"""Settings: file < SEEN_* env < explicit values; one clear error naming the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from cache.config import CacheSettings
from worker.settings import SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(__import__("os").environ):
        if name.startswith("SEEN_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.toml"
    path.write_text(text)
    return path


def test_defaults_match_the_documented_ttl_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    s = load_settings()
    assert (s.ttl.session, s.ttl.user_profile, s.ttl.catalog) == (86400, 900, 300)
    assert (s.ttl.download_progress, s.ttl.search_results, s.ttl.recommendations) == (
        30,
        600,
        3600,
    )
    assert (s.ttl.rate_limit, s.ttl.lock) == (60, 30)
    assert s.cache.addr == "localhost:6379"


def test_priority_init_over_env_over_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, '[cache]\naddr = "file:1"\ndb = 3\n[ttl]\nsession = 10\n')
    monkeypatch.setenv("SEEN_SETTINGS_FILE", str(path))
    s = load_settings()
    assert (s.cache.addr, s.cache.db, s.ttl.session) == ("file:1", 3, 10)
    monkeypatch.setenv("SEEN_CACHE_ADDR", "env:2")
    monkeypatch.setenv("SEEN_TTL_SESSION", "20")
    s = load_settings()
    assert (s.cache.addr, s.cache.db, s.ttl.session) == ("env:2", 3, 20)
    s = load_settings(cache={"addr": "init:3"})
    assert s.cache.addr == "init:3"
    assert s.ttl.session == 20


def test_addr_accepts_url_and_password_stays_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEEN_CACHE_ADDR", "rediss://user:pw@cache.example:6380/2")
    monkeypatch.setenv("SEEN_CACHE_PASSWORD", "hunter2")
    s = load_settings()
    assert s.cache.url() == "rediss://user:pw@cache.example:6380/2"
    assert "pw" not in s.cache.safe_url()
    assert "hunter2" not in repr(s)
    assert "hunter2" not in str(s.model_dump())
    assert s.cache.password is not None
    assert s.cache.password.get_secret_value() == "hunter2"


@pytest.mark.parametrize("addr", ["nohost", "h:0", "h:99999", "http://x:1", ":6379", "h:abc"])
def test_bad_addr(addr: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEEN_CACHE_ADDR", addr)
    with pytest.raises(SettingsError, match=r"cache\.addr.*SEEN_CACHE_ADDR"):
        load_settings()


def test_missing_named_file_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEEN_SETTINGS_FILE", "/nonexistent/settings.toml")
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings()


def test_malformed_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEEN_SETTINGS_FILE", str(write(tmp_path, "[cache\naddr=")))
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings()


def test_invalid_value_names_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEEN_SETTINGS_FILE", str(write(tmp_path, "[ttl]\nsession = -5\n")))
    with pytest.raises(SettingsError, match=r"ttl\.session"):
        load_settings()
    monkeypatch.setenv("SEEN_CACHE_DB", "abc")
    with pytest.raises(SettingsError, match="SEEN_CACHE_DB"):
        load_settings()


def test_unknown_key_in_file_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEEN_SETTINGS_FILE", str(write(tmp_path, "[cache]\nadr = 'x:1'\n")))
    with pytest.raises(SettingsError, match=r"cache\.adr"):
        load_settings()


def test_no_file_is_fine() -> None:
    assert load_settings().cache.addr == "localhost:6379"


def test_cache_settings_url_forms() -> None:
    assert CacheSettings(addr="h:1", db=2).url() == "redis://h:1/2"
    assert CacheSettings(addr="h:1", tls=True).url() == "rediss://h:1/0"
