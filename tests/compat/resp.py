"""A tiny blocking RESP2 client that keeps reply types exact (status vs bulk vs error).

redis-py's parsers fold status replies into strings; a Lua emulation needs the difference
(``redis.call('SET', ...)`` gives Lua a ``{ok='OK'}`` table, a GET a string).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass


@dataclass(frozen=True)
class Status:
    text: str


@dataclass(frozen=True)
class Error:
    text: str


Reply = int | bytes | None | Status | Error | list["Reply"]


def encode_arg(value: object) -> bytes:
    """Argument encoding as redis-py does it: ints/floats via repr, str as UTF-8."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bool):
        raise TypeError("booleans are not valid Redis arguments")
    if isinstance(value, int | float):
        return repr(value).encode("ascii")
    raise TypeError(f"cannot send {type(value).__name__} to Redis")


class RespConnection:
    """One blocking connection; ``call`` sends a command and returns its exact reply."""

    def __init__(
        self,
        host: str,
        port: int,
        db: int = 0,
        password: str | None = None,
        *,
        path: str | None = None,
    ) -> None:
        if path:  # a unix socket (the partition test's store)
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(10)
            self.sock.connect(path)
        else:
            self.sock = socket.create_connection((host, port), timeout=10)
        self.buf = self.sock.makefile("rb")
        if password:
            self._expect_ok(self.call("AUTH", password))
        if db:
            self._expect_ok(self.call("SELECT", db))

    @staticmethod
    def _expect_ok(reply: Reply) -> None:
        if isinstance(reply, Error):
            raise ConnectionError(reply.text)

    def call(self, *args: object) -> Reply:
        parts = [encode_arg(a) for a in args]
        out = [b"*%d\r\n" % len(parts)]
        for p in parts:
            out.append(b"$%d\r\n%s\r\n" % (len(p), p))
        self.sock.sendall(b"".join(out))
        return self._read()

    def _read(self) -> Reply:
        line = self.buf.readline()
        if not line:
            raise ConnectionError("server closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return Status(rest.decode())
        if kind == b"-":
            return Error(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return None
            data = self.buf.read(size + 2)[:-2]
            return data
        if kind == b"*":
            count = int(rest)
            if count < 0:
                return None
            return [self._read() for _ in range(count)]
        raise ConnectionError(f"unexpected RESP line {line!r}")

    def close(self) -> None:
        self.buf.close()
        self.sock.close()
