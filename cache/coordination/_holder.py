"""Who holds a lock: a lock token names its holder, without weakening the secret part.

A lock token is ``<who>/<host>/<pid>:<random>``: the holder's name (``CacheManager(...,
holder=...)``: a worker passes its worker id; any other process its program's name), its host
and process id, then 128 random bits (hex). The random part is the credential (it releases and
renews the lock) and is never shown; the part before it is what the dashboard's locks page and
``seen-worker`` show as the holder. Release and renewal compare the whole token, as before, so
tokens of older processes (random hex only) keep working: they just name nobody.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

RANDOM_BYTES = 16
_UNSAFE = re.compile(r"[^A-Za-z0-9._@=+-]")
_TOKEN = re.compile(r"(?P<who>[^/:]+)/(?P<host>[^/:]+)/(?P<pid>\d+):[0-9a-f]{32}")


def _clean(text: str, fallback: str) -> str:
    return _UNSAFE.sub("-", text)[:64].strip("-.") or fallback


@dataclass(frozen=True)
class HolderIdentity:
    """A lock holder: who, on which host, which process."""

    who: str
    host: str
    pid: int

    @classmethod
    def of_process(cls, who: str | None = None) -> HolderIdentity:
        """This process: ``who`` (default: the program's name), its host name and pid."""
        program = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
        return cls(
            _clean(who or program, "process"),
            _clean(socket.gethostname(), "host"),
            os.getpid(),
        )

    def new_token(self) -> str:
        """A fresh lock token naming this holder (module docstring)."""
        return f"{self.who}/{self.host}/{self.pid}:{secrets.token_hex(RANDOM_BYTES)}"


def holder_of(token: str) -> HolderIdentity | None:
    """The holder a lock token names; None for a token of another form (older processes)."""
    found = _TOKEN.fullmatch(token)
    if found is None:
        return None
    return HolderIdentity(found["who"], found["host"], int(found["pid"]))
