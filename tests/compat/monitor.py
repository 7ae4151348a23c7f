"""Records every command the test server runs (MONITOR) and checks Dragonfly's rules.

MONITOR shows the commands a Lua script runs as ``[0 lua] ...`` lines right after the
EVAL/EVALSHA that started it, so each script's real key accesses can be compared with the
keys it declared. Checked per test (``tests/conftest.py``, ``SEEN_COMPAT_MONITOR=1``):

- a script touched a key it did not declare in KEYS (Dragonfly: "script tried accessing
  undeclared key");
- a multi-key script's keys span more than one ``{hashtag}``;
- anything sent the ``KEYS`` command (Dragonfly truncates it at 8192 results).
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass

from cache.scripts import hashtag
from tests.compat.lua54 import CommandKeys
from tests.compat.resp import RespConnection

_HEAD = re.compile(r"^(\d+\.\d+) \[(\d+) ([^\]]+)\] (.*)$")
_ESCAPES = {"n": b"\n", "r": b"\r", "t": b"\t", "a": b"\a", "b": b"\b", '"': b'"', "\\": b"\\"}


@dataclass(frozen=True)
class MonitorLine:
    """One MONITOR line: who ran it (an address, or ``lua``) and the command's arguments."""

    source: str
    args: tuple[bytes, ...]

    @property
    def command(self) -> str:
        return self.args[0].decode(errors="replace").upper() if self.args else ""


def split_args(text: str) -> list[bytes]:
    """Parse MONITOR's quoted, escaped argument list."""
    out: list[bytes] = []
    i = 0
    n = len(text)
    while i < n:
        if text[i] == " ":
            i += 1
            continue
        if text[i] != '"':
            raise ValueError(f"unexpected MONITOR text at {i}: {text[i : i + 20]!r}")
        i += 1
        buf = bytearray()
        while i < n and text[i] != '"':
            ch = text[i]
            if ch == "\\" and i + 1 < n:
                nxt = text[i + 1]
                if nxt == "x" and i + 3 < n:
                    buf += bytes([int(text[i + 2 : i + 4], 16)])
                    i += 4
                    continue
                buf += _ESCAPES.get(nxt, nxt.encode())
                i += 2
                continue
            buf += ch.encode("utf-8")
            i += 1
        out.append(bytes(buf))
        i += 1
    return out


def parse_line(line: str) -> MonitorLine | None:
    match = _HEAD.match(line)
    if not match:
        return None
    return MonitorLine(source=match.group(3), args=tuple(split_args(match.group(4))))


class MonitorRecorder:
    """A background thread holding a MONITOR connection; ``sync()`` marks a point in it."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.sock = socket.create_connection((host, port), timeout=None)
        self.sock.sendall(b"MONITOR\r\n")
        self.reader = self.sock.makefile("rb")
        first = self.reader.readline()
        if not first.startswith(b"+OK"):
            raise RuntimeError(f"MONITOR refused: {first!r}")
        self.entries: list[MonitorLine] = []
        self.cond = threading.Condition()
        self.markers: set[str] = set()
        self.thread = threading.Thread(target=self._pump, name="monitor", daemon=True)
        self.thread.start()
        self.control = RespConnection(host, port)

    def _pump(self) -> None:
        try:
            for raw in self.reader:
                line = raw[1:].rstrip(b"\r\n").decode("utf-8", errors="replace")
                entry = parse_line(line)
                if entry is None:
                    continue
                with self.cond:
                    if entry.command == "ECHO" and len(entry.args) == 2:
                        text = entry.args[1].decode(errors="replace")
                        if text.startswith("seen-compat-marker-"):
                            self.markers.add(text)
                            self.cond.notify_all()
                            continue
                    self.entries.append(entry)
        except (OSError, ValueError):
            return

    def sync(self, timeout: float = 30.0) -> int:
        """Wait until everything sent so far has been recorded; returns the entry count."""
        marker = f"seen-compat-marker-{uuid.uuid4().hex}"
        self.control.call("ECHO", marker)
        deadline = time.monotonic() + timeout
        with self.cond:
            while marker not in self.markers:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("MONITOR stream did not catch up")
                self.cond.wait(left)
            self.markers.discard(marker)
            return len(self.entries)

    def slice(self, start: int, end: int) -> list[MonitorLine]:
        with self.cond:
            return self.entries[start:end]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.control.close()


ARQ_LAYOUT_SCRIPTS = frozenset(
    {"queue_enqueue", "queue_claim", "queue_finish", "job_delete", "job_retry"}
)
"""The job queue's scripts: on ARQ's own key layout their keys carry no hashtag at all (one
queue instance, by design); on the sharded layout they must share one like every other."""


LAYOUT_MOVE_SCRIPT = "queue_move"
"""The mover between the two layouts (``jobs.queue_move``): one instance only, its keys are
ARQ's (no hashtag) and one shard's of the sharded layout (one ``{<name>:<i>}`` tag)."""
_SHARD_TAG = re.compile(rb".+:\d+")


def arq_layout_call(label: str, declared: set[bytes]) -> bool:
    """A queue script called with ARQ's layout keys (none has a ``{hashtag}``), or the layout
    mover called with exactly two hashtag groups: ARQ's keys and one shard's."""
    if label in ARQ_LAYOUT_SCRIPTS:
        return not any(b"{" in key for key in declared)
    if label == LAYOUT_MOVE_SCRIPT:
        tags = {hashtag(k.decode(errors="replace")) for k in declared if b"{" in k}
        plain = [k for k in declared if b"{" not in k]
        return len(tags) == 1 and bool(plain) and bool(_SHARD_TAG.fullmatch(tags.pop().encode()))
    return False


def violations(
    entries: list[MonitorLine], command_keys: CommandKeys, names: dict[str, str] | None = None
) -> list[str]:
    """Every breach of the Dragonfly rules in ``entries``.

    ``names`` maps the SHA (and source) of each shipped script to its name; when given, only
    shipped scripts are checked for undeclared keys (a test's own probe script is not code we
    run on Dragonfly). ``KEYS`` is refused from anyone.
    """
    names = names or {}
    problems: list[str] = []
    current: tuple[str, set[bytes]] | None = None
    for entry in entries:
        if entry.source == "lua":
            if current is None and names:
                continue  # a script we do not ship
            if current is None:
                problems.append(f"script command without a visible EVAL: {entry.args!r}")
                continue
            label, declared = current
            if entry.command == "KEYS":
                problems.append(f"script {label} ran KEYS")
            for key in command_keys.keys_of(list(entry.args)):
                if key not in declared:
                    problems.append(
                        f"script {label} touched undeclared key {key!r} via {entry.command} "
                        f"(declared: {sorted(declared)!r})"
                    )
            continue
        current = None
        if entry.command == "KEYS":
            problems.append(f"client {entry.source} sent KEYS {entry.args[1:]!r}")
        elif entry.command in ("EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO"):
            numkeys = int(entry.args[2])
            declared = set(entry.args[3 : 3 + numkeys])
            body = entry.args[1].decode(errors="replace")
            label = names.get(body, body[:40])
            current = (label, declared) if not names or body in names else None
            tags = {hashtag(k.decode(errors="replace")) for k in declared}
            if current is not None and len(tags) > 1 and not arq_layout_call(label, declared):
                problems.append(f"script {label} keys span hashtags {sorted(tags)}")
    return problems


HOT_SCRIPTS = frozenset(
    {
        "queue_enqueue",
        "queue_claim",
        "queue_finish",
        "lock_acquire",
        "lock_extend",
        "lock_release",
        "download_pending_put",
        "download_apply",
        "download_drain_claim",
        "slot_claim",
        "slot_finish",
        "guard_acquire",
    }
)
"""The scripts on the hot paths (enqueue, claim, finish, retry and abort through claim and
finish, lease renewal and release, progress put/apply/drain, locks, cron slots, run guards):
on the sharded layout every call of each must touch one hashtag."""


def script_hashtags(entries: list[MonitorLine], names: dict[str, str]) -> list[tuple[str, int]]:
    """(script name, number of distinct hashtags among its declared keys) of every call of a
    shipped script in ``entries``; a queue script's call on ARQ's own layout (the tests of ARQ
    compatibility pin it, in every lane) counts as one: it is no call of the sharded layout."""
    calls: list[tuple[str, int]] = []
    for entry in entries:
        if entry.source == "lua" or entry.command not in ("EVAL", "EVALSHA"):
            continue
        body = entry.args[1].decode(errors="replace")
        label = names.get(body)
        if label is None:
            continue
        declared = entry.args[3 : 3 + int(entry.args[2])]
        if arq_layout_call(label, set(declared)):
            calls.append((label, 1))
            continue
        calls.append((label, len({hashtag(k.decode(errors="replace")) for k in declared})))
    return calls
