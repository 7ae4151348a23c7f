"""Static Dragonfly rules for every shipped Lua script (the dynamic lanes do the rest)."""

from __future__ import annotations

import re

import pytest

from cache.errors import CacheError
from cache.scripts import Script, check_keys, hashtag, load_scripts

SCRIPTS = load_scripts()


def test_scripts_are_shipped() -> None:
    assert "probe" in SCRIPTS


def test_no_two_scripts_share_a_body() -> None:
    """One script per operation: a lease is renewed and released by the lease primitive's
    pair (``lock_extend``, ``lock_release``), never by a copy under another name."""
    bodies: dict[str, str] = {}
    for name, script in sorted(SCRIPTS.items()):
        code = [line.strip() for line in script.source.splitlines()]
        body = "\n".join(line for line in code if line and not line.startswith("--"))
        assert body not in bodies, f"{name}.lua repeats {bodies.get(body)}.lua"
        bodies[body] = name


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_header_and_body_agree(name: str) -> None:
    script = SCRIPTS[name]
    body = "\n".join(line for line in script.source.splitlines() if not line.startswith("--"))
    used_keys = {int(n) for n in re.findall(r"KEYS\[(\d+)\]", body)}
    used_args = {int(n) for n in re.findall(r"ARGV\[(\d+)\]", body)}
    assert used_keys <= set(range(1, script.declared_keys + 1)), "undeclared KEYS index"
    assert max(used_args, default=0) <= script.declared_args, "ARGV used but not in header"
    assert re.search(r"^--\s*returns?:", script.source, re.MULTILINE | re.IGNORECASE), (
        "header must say what the script returns"
    )


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_no_forbidden_constructs(name: str) -> None:
    source = SCRIPTS[name].source
    assert not re.search(r"""redis\.p?call\(\s*['"]keys['"]""", source, re.IGNORECASE)
    assert "#!lua" not in source, "Dragonfly reads only --!df flags"
    assert "setresp" not in source
    assert "allow-undeclared-keys" not in source
    # keys must come from KEYS: no key strings built inside a script
    assert not re.search(r"""redis\.p?call\(\s*['"]\w+['"]\s*,\s*['"]""", source), (
        "a literal key name inside a script is an undeclared key"
    )


def test_hashtag_rules() -> None:
    assert hashtag("seen:lock:{a}:fence") == "a"
    assert hashtag("seen:lock:{a}") == "a"
    assert hashtag("plain") == "plain"
    assert hashtag("x{}y") == "x{}y"
    script = Script.parse("two", "-- KEYS[1]: a\n-- KEYS[2]: b\n-- returns: 1\nreturn 1")
    check_keys(script, ["seen:{dl:1}:a", "seen:{dl:1}:b"])
    with pytest.raises(CacheError, match="hashtag"):
        check_keys(script, ["seen:{dl:1}:a", "seen:{dl:2}:b"])
    with pytest.raises(CacheError, match="declares 2 keys"):
        check_keys(script, ["seen:{dl:1}:a"])


@pytest.mark.parametrize(
    ("keys", "one_tag"),
    [
        (["{q:1}:queue", "{q:1}:job:x"], True),  # the sharded queue's keys: the prefix check
        (["{q:1}:queue", "a{q:1}b"], True),  # the same tag after other text: compared in full
        (["{a{b}:x", "{a{b}:y"], True),  # a tag holding "{": still the first "}" that ends it
        (["{q:1}:queue", "{q:10}:job:x"], False),  # a prefix of the tag is not the tag
        (["{q:1}:queue", "{q:2}:job:x"], False),
        (["{q:1}:queue", "q:1"], True),  # no braces: the whole key is the tag
        (["{}:a", "{}:b"], False),  # an empty tag is no tag: the whole keys differ
        (["x{q}", "{q}y", "{q}z"], True),
        (["{q}y", "{q}z", "{r}w"], False),
    ],
)
def test_single_hashtag_check_follows_the_hashtag_rules(keys: list[str], one_tag: bool) -> None:
    """The fast prefix check gives the same verdict as comparing ``hashtag`` of every key."""
    assert (len({hashtag(k) for k in keys}) == 1) is one_tag
    script = Script.parse(
        "batch", "-- KEYS[1]: a\n-- KEYS[2]: item\n-- repeat: KEYS[2..2] for each item\nreturn 1"
    )
    if one_tag:
        check_keys(script, keys)
    else:
        with pytest.raises(CacheError, match="hashtag"):
            check_keys(script, keys)


def test_header_must_number_keys_in_order() -> None:
    with pytest.raises(CacheError):
        Script.parse("bad", "-- KEYS[2]: b\nreturn 1")


def test_sha_is_the_sha1_of_the_source_hashed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every EVALSHA reads ``script.sha``: the source is hashed on first use only."""
    import hashlib

    calls: list[bytes] = []
    real = hashlib.sha1

    def counting(data: bytes, **kwargs: bool) -> hashlib._Hash:
        calls.append(data)
        return real(data, **kwargs)

    script = Script.parse("probe_copy", SCRIPTS["probe"].source)
    monkeypatch.setattr(hashlib, "sha1", counting)  # what cache.scripts calls
    shas = {script.sha for _ in range(5)}
    assert shas == {real(script.source.encode()).hexdigest()}
    assert len(calls) == 1
