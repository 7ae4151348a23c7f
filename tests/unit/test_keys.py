"""KeyBuilder: ids can never become patterns or break out of their key."""

from __future__ import annotations

import pytest

from cache.errors import InvalidKeyError
from cache.keys import KeyBuilder, escape_glob, shard_of, token_hash, validate_id
from cache.scripts import hashtag

K = KeyBuilder()


@pytest.mark.parametrize(
    "bad", ["", "*", "a*", "a:b", "{x}", "a b", "a?", "[a]", "a\\b", "x" * 129, "é", None, 5]
)
def test_bad_ids_rejected(bad: object) -> None:
    with pytest.raises(InvalidKeyError):
        K.user_profile(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="user_id"):
        K.user_sessions(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("good", ["u1", "user-42", "a.b_c", "x@y.z", "A=B+C", "9" * 128])
def test_good_ids(good: str) -> None:
    assert validate_id(good) == good
    assert K.user_profile(good) == f"seen:user:{good}:profile"


def test_namespace_and_layout() -> None:
    assert K.session("s1") == "seen:session:s1"
    assert KeyBuilder("test").session("s1") == "test:session:s1"
    with pytest.raises(InvalidKeyError):
        KeyBuilder("a:b")


def test_refresh_token_is_hashed_never_raw() -> None:
    token = "secret-refresh-token-value"
    key = K.session_by_refresh_token(token)
    assert token not in key
    assert key.endswith(token_hash(token))
    assert len(token_hash(token)) == 64


def test_lock_and_fence_share_a_hashtag() -> None:
    assert hashtag(K.lock("cron:cleanup")) == hashtag(K.lock_fence("cron:cleanup"))
    with pytest.raises(InvalidKeyError):
        K.lock("a}b")
    with pytest.raises(InvalidKeyError):
        K.lock("*")


def test_download_keys_of_one_shard_share_a_hashtag() -> None:
    shard = shard_of("job-1", 16)
    keys = [
        K.download_progress("job-1", shard),
        K.download_active(shard),
        K.download_user_index("u1", shard),
        K.download_events(shard),
    ]
    assert len({hashtag(k) for k in keys}) == 1
    assert 0 <= shard < 16
    assert shard_of("job-1", 16) == shard  # stable


def test_patterns_escape_and_stay_in_namespace() -> None:
    assert K.pattern("catalog", "dashboard") == "seen:catalog:dashboard:*"
    assert escape_glob("a*b?[c]\\") == "a\\*b\\?\\[c\\]\\\\"
    assert K.owns("seen:x")
    assert not K.owns("arq:queue")
    with pytest.raises(InvalidKeyError):
        K.pattern("*")
