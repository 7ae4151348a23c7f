"""Hosts as network namespaces on this machine, for the partition tests.

``Lab`` builds one namespace per host plus a "switch" namespace holding a bridge; each host
namespace gets a veth pair whose other end is a port of that bridge. Hosts have an address on a
private /24 and no other route, so their traffic can only go to addresses of the namespaces the
lab made itself: never to the root namespace's addresses, never outside the machine. Cutting a
host is ``ip link set <its switch port> down`` inside the switch namespace (a cable pulled at
the switch): the host keeps its address and routes, its packets are dropped and TCP retransmits
them until the port comes back up.

Names are unique per run (``prefix`` + pid) and every namespace and process is removed on exit,
also when the test fails (each command bounded by a timeout). The lab's processes run with
``ip netns exec`` (which execs the command, so the pid is the program's own).

``unavailable()`` says why namespaces cannot be made here (not root, no ``ip``);
``cannot_run(reason)`` skips, or fails with ``CI=true``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import NoReturn, Self

import pytest

from worker.embedded import EmbeddedServer

IP_TIMEOUT_S = 10.0
SUBNET = "10.213.77"
"""The lab's /24; only namespaces of one lab share it (each lab has its own switch)."""


class LabError(RuntimeError):
    """An ``ip`` command failed while building or changing the lab."""


def unavailable() -> str | None:
    """Why network namespaces cannot be made on this machine, or None when they can."""
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    if os.geteuid() != 0:
        return "creating network namespaces needs root (run as root, e.g. in CI)"
    return None


def cannot_run(reason: str) -> NoReturn:
    """Skip a test that needs namespaces, with ``reason``; with ``CI=true`` fail it instead
    (CI runs as root: a skip there would hide a lane that silently stopped running)."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and this test needs network namespaces: {reason}")
    pytest.skip(reason)


def ip(*args: str, timeout: float = IP_TIMEOUT_S) -> str:
    """Run ``ip <args>``; raises ``LabError`` with its output when it fails."""
    try:
        done = subprocess.run(
            ["ip", *args], capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"ip {' '.join(args)}: no answer within {timeout}s") from exc
    if done.returncode != 0:
        raise LabError(f"ip {' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done.stdout


@dataclass
class Host:
    """One host: its namespace, its address, and its port on the switch."""

    name: str
    netns: str
    addr: str
    port: str
    """The host's veth end inside the switch namespace (what ``cut`` takes down)."""

    def exec_prefix(self) -> list[str]:
        """Prefix a command with this to run it on the host."""
        return ["ip", "netns", "exec", self.netns]


@dataclass
class Lab:
    """A switch and hosts; ``with Lab(["store", "w0"]) as lab: lab.hosts["store"].addr``."""

    roles: Sequence[str]
    prefix: str = "seen"
    hosts: dict[str, Host] = field(default_factory=dict)
    switch: str = ""
    _made: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        tag = f"{self.prefix}{os.getpid()}"
        self.switch = f"{tag}-switch"
        for index, role in enumerate(self.roles, start=1):
            self.hosts[role] = Host(
                name=role,
                netns=f"{tag}-{role}",
                addr=f"{SUBNET}.{10 + index}",
                port=f"sw{index}",  # an interface of the switch namespace only
            )

    def _add_netns(self, name: str) -> None:
        ip("netns", "add", name)
        self._made.append(name)
        ip("-n", name, "link", "set", "lo", "up")

    def build(self) -> Self:
        """Create the namespaces, the bridge and one cabled port per host (first removing
        namespaces a killed earlier run of this prefix left behind)."""
        sweep_orphans(self.prefix)
        try:
            self._add_netns(self.switch)
            ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
            ip("-n", self.switch, "link", "set", "br0", "up")
            for host in self.hosts.values():
                self._add_netns(host.netns)
                # Both ends are created straight inside their namespaces: no interface of the
                # lab ever exists in the root namespace.
                ip(
                    "link", "add", "eth0", "netns", host.netns, "type", "veth",
                    "peer", "name", host.port, "netns", self.switch,
                )  # fmt: skip
                ip("-n", self.switch, "link", "set", host.port, "master", "br0")
                ip("-n", self.switch, "link", "set", host.port, "up")
                ip("-n", host.netns, "addr", "add", f"{host.addr}/24", "dev", "eth0")
                ip("-n", host.netns, "link", "set", "eth0", "up")
        except BaseException:
            self.teardown()
            raise
        return self

    def cut(self, role: str) -> None:
        """Pull the host's cable at the switch: nothing reaches it or leaves it."""
        ip("-n", self.switch, "link", "set", self.hosts[role].port, "down")

    def heal(self, role: str) -> None:
        ip("-n", self.switch, "link", "set", self.hosts[role].port, "up")

    def teardown(self) -> list[str]:
        """Delete every namespace this lab made (their interfaces go with them); returns
        the problems met, after trying every one."""
        problems = []
        while self._made:
            name = self._made.pop()
            try:
                ip("netns", "del", name)
            except LabError as exc:
                problems.append(str(exc))
        return problems

    def __enter__(self) -> Self:
        return self.build()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        problems = self.teardown()
        if problems and exc_type is None:
            raise LabError("; ".join(problems))


def existing_namespaces(prefix: str) -> list[str]:
    """Namespaces whose name starts with ``prefix`` (a test checks none is left behind)."""
    out = ip("netns", "list")
    return [line.split()[0] for line in out.splitlines() if line.startswith(prefix)]


class StoreProcess(EmbeddedServer):
    """A private redis-server/valkey-server on a lab host (``SEEN_TEST_SERVER`` or the one the
    harness would pick), listening on the host's address and on a unix socket: the test
    process, which stays in the root namespace, reads the store through the socket file, so it
    never sends a packet into the lab. ``EmbeddedServer`` run inside the host's namespace."""

    PORT = 6379

    def __init__(self, host: Host, binary: str | None = None, start_timeout: float = 10.0) -> None:
        super().__init__(
            binary or os.environ.get("SEEN_TEST_SERVER") or None,
            self.PORT,
            start_timeout=start_timeout,
        )
        self.host = host
        self._dir = tempfile.mkdtemp(prefix="seen-ns-")  # short: unix socket paths are
        self.socket = Path(self._dir) / "store.sock"  # limited to ~100 characters

    @property
    def addr(self) -> str:
        """The address workers on the lab's hosts use."""
        return f"{self.host.addr}:{self.PORT}"

    @property
    def unix_url(self) -> str:
        return f"unix://{self.socket}?db=0"

    def _args(self) -> list[str]:
        args = super()._args()
        args[args.index("--bind") + 1] = self.host.addr
        unix = ["--unixsocket", str(self.socket), "--unixsocketperm", "700"]
        return [*self.host.exec_prefix(), *args, *unix]

    def _answers(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(0.2)
                sock.connect(str(self.socket))
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False


def sweep_orphans(prefix: str) -> list[str]:
    """Delete namespaces named ``<prefix><pid>-...`` whose test process no longer runs (a run
    killed with SIGKILL cannot clean up); returns their names."""
    removed = []
    for name in existing_namespaces(prefix):
        pid = name[len(prefix) :].partition("-")[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            ip("netns", "del", name)
            removed.append(name)
    return removed
