"""Loads the Lua scripts in ``cache/scripts/`` once and runs them by SHA.

Each ``<name>.lua`` starts with a header comment that declares its keys and arguments::

    -- KEYS[1]: seen:lock:{<name>}        the lock
    -- KEYS[2]: seen:lock:{<name>}:fence  fencing counter
    -- ARGV[1]: token
    -- returns: integer fencing token, or 0 when not acquired

Dragonfly rules, enforced here at call time and by the compatibility tests: a script gets
exactly the keys its header declares; keys of a multi-key script share one ``{hashtag}``;
scripts return integers, strings or arrays of them, never Lua floats.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from redis import exceptions as redis_exc
from redis.asyncio import Redis

from cache.errors import CacheError, translate_errors

_KEYS_DECL = re.compile(r"^--\s*KEYS\[(\d+)\]", re.MULTILINE)
_ARGV_DECL = re.compile(r"^--\s*ARGV\[(\d+)\]", re.MULTILINE)
ScriptArg = str | bytes | int | float


def hashtag(key: str) -> str:
    """The part of ``key`` that decides its slot/lock (Redis Cluster hashtag rules)."""
    start = key.find("{")
    if start >= 0:
        end = key.find("}", start + 1)
        if end > start + 1:
            return key[start + 1 : end]
    return key


@dataclass(frozen=True)
class Script:
    """One Lua script and what its header declares."""

    name: str
    source: str
    declared_keys: int
    declared_args: int

    @property
    def sha(self) -> str:
        return hashlib.sha1(self.source.encode("utf-8"), usedforsecurity=False).hexdigest()

    @classmethod
    def parse(cls, name: str, source: str) -> Script:
        header = "\n".join(line for line in source.splitlines() if line.startswith("--"))
        key_numbers = sorted(int(n) for n in _KEYS_DECL.findall(header))
        arg_numbers = sorted(set(int(n) for n in _ARGV_DECL.findall(header)))
        if key_numbers != list(range(1, len(key_numbers) + 1)):
            raise CacheError(f"script {name}: header must declare KEYS[1..n] in order")
        return cls(name, source, len(key_numbers), len(arg_numbers))


def load_scripts() -> dict[str, Script]:
    """Every ``*.lua`` shipped in ``cache/scripts``, by file stem."""
    folder = resources.files("cache").joinpath("scripts")
    found: dict[str, Script] = {}
    for entry in folder.iterdir():
        if entry.name.endswith(".lua"):
            name = entry.name[: -len(".lua")]
            found[name] = Script.parse(name, entry.read_text(encoding="utf-8"))
    return dict(sorted(found.items()))


class ScriptRunner:
    """Runs the shipped scripts on one client by EVALSHA, reloading on NOSCRIPT.

    A restarted or failed-over server forgets loaded scripts; the first call after that gets
    NOSCRIPT, loads the script and runs it again, so callers never see the difference.
    """

    def __init__(self, client: Redis, scripts: dict[str, Script] | None = None) -> None:
        self.client = client
        self.scripts = scripts if scripts is not None else load_scripts()

    def get(self, name: str) -> Script:
        try:
            return self.scripts[name]
        except KeyError:
            raise CacheError(f"no Lua script named {name!r}") from None

    async def load_all(self) -> int:
        """SCRIPT LOAD every script (start-up warmup); returns how many."""
        with translate_errors(None, operation="SCRIPT LOAD"):
            for script in self.scripts.values():
                await self.client.script_load(script.source)
        return len(self.scripts)

    async def run(self, name: str, keys: Sequence[str], args: Sequence[ScriptArg] = ()) -> Any:
        """Run a script; raises ``CacheError`` when the keys break the Dragonfly rules."""
        script = self.get(name)
        check_keys(script, keys)
        first = keys[0] if keys else None
        with translate_errors(first, operation=f"script {name}"):
            try:
                return await self._evalsha(script.sha, keys, args)
            except redis_exc.NoScriptError:
                await self.client.script_load(script.source)
                return await self._evalsha(script.sha, keys, args)

    async def _evalsha(self, sha: str, keys: Sequence[str], args: Sequence[ScriptArg]) -> Any:
        # redis-py types evalsha's arguments as str only; EVALSHA takes any bulk string.
        command = self.client.execute_command
        return await command("EVALSHA", sha, len(keys), *keys, *args)  # type: ignore[no-untyped-call]


def check_keys(script: Script, keys: Sequence[str]) -> None:
    """Exactly the declared number of keys, all under one hashtag."""
    if len(keys) != script.declared_keys:
        raise CacheError(
            f"script {script.name} declares {script.declared_keys} keys, got {len(keys)}"
        )
    if len(keys) > 1:
        tags = {hashtag(k) for k in keys}
        if len(tags) > 1:
            raise CacheError(
                f"script {script.name}: keys span hashtags {sorted(tags)}; "
                "Dragonfly needs one {hashtag} per multi-key script"
            )
