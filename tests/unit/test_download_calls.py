"""Each download script is called through one builder whose KEYS follow the script's header
(the ``-- KEYS[i]: <template>`` lines) and whose ARGV fit what the header declares."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from cache.config import CacheConfig
from cache.download import _calls
from cache.download._layout import DownloadLayout
from cache.keys import KeyBuilder
from cache.scripts import ScriptCall, load_scripts
from tests.support.updates import upd

SCRIPTS = load_scripts()
LAYOUT = DownloadLayout(KeyBuilder("seen"), CacheConfig())
JOB, USER = "dl-7", "u9"
SHARD = LAYOUT.shard(JOB)
NOW = 1_700_000_000_000
_KEY_LINE = re.compile(r"^--\s*KEYS\[(\d+)\]:\s*(\S+)", re.MULTILINE)

BUILDERS: dict[str, Callable[[], ScriptCall]] = {
    "download_apply": lambda: _calls.apply(LAYOUT, upd(JOB, 3, user=USER), NOW),
    "download_apply/pending": lambda: _calls.apply_pending(LAYOUT, SHARD, JOB, USER, NOW),
    "download_pending_put": lambda: _calls.pending_put(
        LAYOUT, upd(JOB, 3, user=USER), SHARD, "drain-1", NOW
    ),
    "download_drain_claim": lambda: _calls.drain_claim(LAYOUT, SHARD, "drain-1"),
    "download_drain_kick": lambda: _calls.drain_kick(LAYOUT, SHARD, "drain-1", NOW, 500),
    "download_pop_stale": lambda: _calls.pop_stale(LAYOUT, SHARD, NOW, 100),
    "download_forget": lambda: _calls.forget(LAYOUT, SHARD, JOB, USER, NOW),
}


def header_keys(script: str) -> list[str]:
    """The header's key templates with ``<s>``, ``<job>``, ``<user>`` filled in."""
    lines = sorted((int(i), t) for i, t in _KEY_LINE.findall(SCRIPTS[script].source))
    fill = {"<s>": str(SHARD), "<job>": JOB, "<user>": USER}
    out = []
    for _, template in lines:
        for placeholder, value in fill.items():
            template = template.replace(placeholder, value)
        out.append(template)
    return out


def test_every_download_script_has_a_builder() -> None:
    shipped = {name for name in SCRIPTS if name.startswith("download_")}
    assert shipped == {name.partition("/")[0] for name in BUILDERS}


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_builder_keys_follow_the_header_and_args_fit_it(name: str) -> None:
    script = name.partition("/")[0]
    keys, args = BUILDERS[name]()
    assert list(keys) == header_keys(script)
    assert 0 < len(args) <= SCRIPTS[script].declared_args


def test_pending_apply_passes_no_padding() -> None:
    """Pending mode reads the update from the pending hash: ARGV[1..8] only, none empty."""
    _, direct = _calls.apply(LAYOUT, upd(JOB, 3, user=USER), NOW)
    _, pending = _calls.apply_pending(LAYOUT, SHARD, JOB, USER, NOW)
    assert len(direct) == SCRIPTS["download_apply"].declared_args == 14
    assert list(pending) == ["pending", *direct[1:6], JOB, USER]
    assert "" not in pending
