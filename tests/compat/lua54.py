"""Runs our Lua scripts the way Dragonfly does: Lua 5.4, declared keys only, no floats.

Redis and Valkey run Lua 5.1, where ``10/5`` is the number 2 and touching an undeclared key
works. Dragonfly runs Lua 5.4 (``10/5`` is the float 2.0, returned as the string "2") and
refuses undeclared keys. This runner executes each script client-side in Lua 5.4 (lupa), with
``redis.call`` forwarded to the real test server over a blocking connection, and:

- raises ``script tried accessing undeclared key`` (Dragonfly's words) for any key not in KEYS,
- raises ``Lua54FloatReturn`` when a script returns a float anywhere in its reply,
- refuses the ``KEYS`` command.

The blocking calls hold the event loop for the duration of a script, so scripts stay atomic
with respect to every other coroutine in the test process (the property tests rely on).
It mirrors ``cache.scripts.ScriptRunner``'s interface and is swapped in by ``tests/conftest.py``
when ``SEEN_COMPAT_LUA54=1``.
"""

from __future__ import annotations

import hashlib
import json
import weakref
from collections.abc import Sequence
from typing import Any, ClassVar

import lupa
import lupa.lua54 as lua54
from redis import exceptions as redis_exc
from redis.asyncio import Redis

from cache.errors import CacheResponseError, CorruptKeyError, translate_errors
from cache.scripts import (
    Replicas,
    Script,
    ScriptArg,
    ScriptCall,
    ScriptRunner,
    check_keys,
    corrupt_key_error,
)
from tests.compat.resp import Error, RespConnection, Status, encode_arg

UNDECLARED = "script tried accessing undeclared key"


class Lua54FloatReturn(AssertionError):
    """A script returned a Lua float: Dragonfly would answer with a string."""


class CommandKeys:
    """Which arguments of a command are keys, from the server's COMMAND table."""

    def __init__(self, conn: RespConnection) -> None:
        self.conn = conn
        self.specs: dict[str, tuple[int, int, int, bool]] = {}

    def keys_of(self, args: list[bytes]) -> list[bytes]:
        name = args[0].decode().lower()
        spec = self.specs.get(name)
        if spec is None:
            info = self.conn.call("COMMAND", "INFO", name)
            if not isinstance(info, list) or not info or not isinstance(info[0], list):
                raise redis_exc.ResponseError(f"unknown command {name!r} in script")
            row = info[0]
            flags = {f.text if isinstance(f, Status) else str(f) for f in row[2]}  # type: ignore[union-attr]
            spec = (int(row[3]), int(row[4]), int(row[5]), "movablekeys" in flags)  # type: ignore[arg-type]
            self.specs[name] = spec
        first, last, step, movable = spec
        if movable:
            reply = self.conn.call("COMMAND", "GETKEYS", *args)
            if isinstance(reply, Error):
                return []
            return [k for k in reply if isinstance(k, bytes)] if isinstance(reply, list) else []
        if first == 0:
            return []
        end = len(args) - 1 if last < 0 else last
        if last < -1:
            end = len(args) + last
        return [args[i] for i in range(first, end + 1, step or 1) if i < len(args)]


class Lua54Runner(ScriptRunner):
    """A ``ScriptRunner`` that executes scripts under Dragonfly's Lua rules."""

    executed: ClassVar[set[str]] = set()
    """Names of the scripts run in this test session (coverage of the lane)."""

    def __init__(self, client: Redis, scripts: dict[str, Script] | None = None) -> None:
        super().__init__(client, scripts)
        self._conn: RespConnection | None = None
        self.lua = lua54.LuaRuntime(
            encoding=None, unpack_returned_tuples=False, register_eval=False
        )
        self._compiled: dict[str, Any] = {}
        self.calls: list[tuple[str, list[bytes]]] = []

    @property
    def conn(self) -> RespConnection:
        """The blocking connection, opened on first use and after a failure."""
        if self._conn is None:
            kwargs = self.client.connection_pool.connection_kwargs
            try:
                conn = RespConnection(
                    str(kwargs.get("host", "127.0.0.1")),
                    int(kwargs.get("port", 6379)),
                    int(kwargs.get("db", 0) or 0),
                    kwargs.get("password"),
                    path=kwargs.get("path"),
                )
            except OSError as exc:
                raise redis_exc.ConnectionError(f"Lua 5.4 runner cannot connect: {exc}") from exc
            self._conn = conn
            self.command_keys = CommandKeys(conn)
            weakref.finalize(self, conn.close)
        return self._conn

    async def run(
        self,
        name: str,
        keys: Sequence[str],
        args: Sequence[ScriptArg] = (),
        *,
        single_hashtag: bool = True,
    ) -> Any:
        script = self.get(name)
        check_keys(script, keys, single_hashtag=single_hashtag)
        with translate_errors(keys[0] if keys else None, operation=f"script {name}"):
            try:
                return self._execute(script, list(keys), list(args))
            except (OSError, ConnectionError) as exc:
                if self._conn is not None:
                    self._conn.close()
                self._conn = None
                raise redis_exc.ConnectionError(f"Lua 5.4 runner lost the server: {exc}") from exc
            except redis_exc.ResponseError as exc:
                bad = corrupt_key_error(name, keys, exc)
                if bad is not None:
                    raise bad from exc
                raise

    async def run_many_replicated(
        self,
        name: str,
        calls: Sequence[ScriptCall],
        replicas: Replicas,
        *,
        single_hashtag: bool = True,
        return_errors: bool = False,
    ) -> tuple[list[Any], list[bool]]:
        """``run_many``, then ``WAIT`` on the runner's one connection (its writes)."""
        replies = await self.run_many(
            name, calls, single_hashtag=single_hashtag, return_errors=return_errors
        )
        count = self.conn.call("WAIT", replicas.count, replicas.timeout_ms)
        ok = isinstance(count, int) and count >= replicas.count
        return replies, [ok] * len(replies)

    async def run_many(
        self,
        name: str,
        calls: Sequence[ScriptCall],
        *,
        single_hashtag: bool = True,
        return_errors: bool = False,
    ) -> list[Any]:
        """One call after the other (each atomic, as on the server); a call that found a bad
        key gets its ``CorruptKeyError`` in its place, as ``ScriptRunner.run_many`` does."""
        replies: list[Any] = []
        for keys, args in calls:
            try:
                replies.append(await self.run(name, keys, args, single_hashtag=single_hashtag))
            except CorruptKeyError as exc:
                replies.append(exc)
                continue
            except CacheResponseError as exc:
                if not return_errors:
                    raise
                replies.append(exc)
        return replies

    # -- execution ---------------------------------------------------------------------
    def _function(self, script: Script) -> Any:
        fn = self._compiled.get(script.name)
        if fn is None:
            loader = self.lua.eval(b"function(src, name) return load(src, '@' .. name) end")
            fn = loader(script.source.encode(), script.name.encode())
            if fn is None:
                raise redis_exc.ResponseError(f"Error compiling script {script.name}")
            self._compiled[script.name] = fn
        return fn

    def _execute(self, script: Script, keys: list[str], args: list[ScriptArg]) -> Any:
        declared = {k.encode() for k in keys}
        Lua54Runner.executed.add(script.name)
        g = self.lua.globals()
        g[b"KEYS"] = self.lua.table_from([k.encode() for k in keys])
        g[b"ARGV"] = self.lua.table_from([encode_arg(a) for a in args])
        g[b"redis"] = self._redis_table(script.name, declared)
        g[b"cjson"] = self._cjson_table()
        try:
            result = self._function(script)()
        except lupa.LuaError as exc:
            raise redis_exc.ResponseError(f"Error running script {script.name}: {exc}") from exc
        return self._to_python(script.name, result, "return")

    def _redis_table(self, name: str, declared: set[bytes]) -> Any:
        runner = self

        def call(*lua_args: Any) -> Any:
            return runner._call(name, declared, lua_args, protected=False)

        def pcall(*lua_args: Any) -> Any:
            return runner._call(name, declared, lua_args, protected=True)

        def sha1hex(text: Any) -> bytes:
            data = text if isinstance(text, bytes) else str(text).encode()
            return hashlib.sha1(data, usedforsecurity=False).hexdigest().encode()

        def status_reply(text: Any) -> Any:
            return self.lua.table_from({b"ok": text})

        def error_reply(text: Any) -> Any:
            return self.lua.table_from({b"err": text})

        def log(level: Any, *message: Any) -> None:
            return None

        return self.lua.table_from(
            {
                b"call": call,
                b"pcall": pcall,
                b"sha1hex": sha1hex,
                b"status_reply": status_reply,
                b"error_reply": error_reply,
                b"log": log,
                b"LOG_DEBUG": 0,
                b"LOG_VERBOSE": 1,
                b"LOG_NOTICE": 2,
                b"LOG_WARNING": 3,
            }
        )

    def _cjson_table(self) -> Any:
        def encode(value: Any) -> bytes:
            return json.dumps(self._lua_to_plain(value), separators=(",", ":")).encode()

        def decode(text: Any) -> Any:
            data = json.loads(text)
            return self._plain_to_lua(data)

        return self.lua.table_from({b"encode": encode, b"decode": decode})

    def _lua_to_plain(self, value: Any) -> Any:
        if lua54.lua_type(value) == "table":
            items = dict(value.items())
            if items and all(isinstance(k, int) for k in items):
                return [self._lua_to_plain(items[i]) for i in sorted(items)]
            return {
                (k.decode() if isinstance(k, bytes) else str(k)): self._lua_to_plain(v)
                for k, v in items.items()
            }
        if isinstance(value, bytes):
            return value.decode()
        return value

    def _plain_to_lua(self, value: Any) -> Any:
        if isinstance(value, list):
            return self.lua.table_from([self._plain_to_lua(v) for v in value])
        if isinstance(value, dict):
            return self.lua.table_from(
                {k.encode(): self._plain_to_lua(v) for k, v in value.items()}
            )
        if isinstance(value, str):
            return value.encode()
        return value

    def _lua_arg(self, value: Any) -> bytes:
        if isinstance(value, bytes):
            return value
        if isinstance(value, str):
            return value.encode()
        if isinstance(value, bool) or value is None:
            raise redis_exc.ResponseError(
                "Lua redis lib command arguments must be strings or integers"
            )
        if isinstance(value, int | float):
            # Lua 5.4's own number formatting: 2.0 stays "2.0" (Redis would send "2").
            text = self.lua.eval(b"tostring")(value)
            return text if isinstance(text, bytes) else str(text).encode()
        raise redis_exc.ResponseError(f"unsupported argument type {type(value).__name__}")

    def _call(self, name: str, declared: set[bytes], lua_args: Any, protected: bool) -> Any:
        conn = self.conn
        args = [self._lua_arg(a) for a in lua_args]
        if not args:
            raise redis_exc.ResponseError("Please specify at least one argument for this call")
        command = args[0].decode().upper()
        if command == "KEYS":
            raise redis_exc.ResponseError(f"script {name}: the KEYS command is not allowed")
        for key in self.command_keys.keys_of(args):
            if key not in declared:
                raise redis_exc.ResponseError(
                    f"{UNDECLARED}: script {name} touched {key!r} via {command}"
                )
        self.calls.append((name, args))
        reply = conn.call(*args)
        if isinstance(reply, Error):
            if protected:
                return self.lua.table_from({b"err": reply.text.encode()})
            raise redis_exc.ResponseError(reply.text)
        return self._reply_to_lua(reply)

    def _reply_to_lua(self, reply: Any) -> Any:
        if isinstance(reply, Status):
            return self.lua.table_from({b"ok": reply.text.encode()})
        if reply is None:
            return False
        if isinstance(reply, list):
            return self.lua.table_from([self._reply_to_lua(r) for r in reply])
        return reply

    def _to_python(self, name: str, value: Any, path: str) -> Any:
        if value is None or value is False:
            return None
        if value is True:
            return 1
        if isinstance(value, float):
            raise Lua54FloatReturn(
                f"script {name} returned the Lua float {value!r} at {path}: Dragonfly would "
                f"reply with the string {str(value)!r}; use math.floor() or tostring()"
            )
        if isinstance(value, int):
            return value
        if isinstance(value, bytes):
            return value
        if isinstance(value, str):
            return value.encode()
        if lua54.lua_type(value) == "table":
            ok = value[b"ok"]
            if ok is not None:
                return ok if isinstance(ok, bytes) else str(ok).encode()
            err = value[b"err"]
            if err is not None:
                raise redis_exc.ResponseError(err.decode() if isinstance(err, bytes) else str(err))
            out = []
            i = 1
            while True:
                item = value[i]
                if item is None:
                    break
                out.append(self._to_python(name, item, f"{path}[{i}]"))
                i += 1
            return out
        raise redis_exc.ResponseError(f"script {name} returned unsupported {type(value).__name__}")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
