"""Every download script compiles as Lua 5.1 (Redis) and Lua 5.4 (Dragonfly), and its number
formatting gives plain integers under both (a Lua 5.4 float would print as "3.0")."""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest

from cache.scripts import load_scripts

VERSIONS = ("lupa.lua51", "lupa.lua54")
SCRIPTS = {n: s for n, s in load_scripts().items() if n.startswith("download_")}


def runtime(module: str) -> object:
    lua: ModuleType = importlib.import_module(module)
    return lua.LuaRuntime()


@pytest.mark.parametrize("module", VERSIONS)
@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_script_compiles(module: str, name: str) -> None:
    lua = runtime(module)
    compiled = lua.execute("return function(src) return (loadstring or load)(src) ~= nil end")  # type: ignore[attr-defined]
    assert compiled(SCRIPTS[name].source), f"{name} does not compile under {module}"


@pytest.mark.parametrize("module", VERSIONS)
def test_integer_formatting_is_version_independent(module: str) -> None:
    lua = runtime(module)
    fmt = lua.execute(  # type: ignore[attr-defined]
        "local function I(x) return string.format('%.0f', x) end\n"
        "return function() return I(math.floor(2500000 * 10000.0 / 10000000)), "
        "I(math.floor(1181269.27)), I(math.ceil(7000000 / 1181269)), I(-1), "
        "tostring(math.floor(12.7)), I(2^53 - 1) end"
    )
    assert list(fmt()) == ["2500", "1181269", "6", "-1", "12", "9007199254740991"]
