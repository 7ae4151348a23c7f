"""Which ``Host`` (and ``Origin``) our HTTP servers answer: the guard against DNS rebinding.

A page on ``evil.example`` whose name an attacker points at 127.0.0.1 is, for the victim's
browser, the same origin as any server listening there: it may read every answer and post
forms, with ``Origin: http://evil.example:<port>`` and ``Sec-Fetch-Site: same-origin``. The
one thing the page cannot change is the ``Host`` header: it is the name it was loaded from.
So the dashboard and the worker's ``/metrics`` server answer only a ``Host`` that is

- an **IP literal** (``127.0.0.1:9470``, ``10.244.1.17:9464``, ``[::1]``): an address is not a
  name, DNS cannot rebind it, and a page served from an IP literal is only ever that address's
  own page. Kubernetes probes send ``Host: <pod IP>:<port>`` and keep working;
- one of the **loopback names** (``localhost``) or the **bound host** when it is a name;
- a name in the **allow-list** (``dashboard.allowed_hosts`` / ``http.allowed_hosts``): what a
  proxy, an ingress or a scraper uses to reach us (``dash.example.com``, ``worker:9464``). A
  name without a port matches any port (a TLS proxy's public port is not ours).

Anything else gets ``421 Misdirected Request`` with a one-line reason and nothing of the page.

``Origin`` (for the dashboard's POST actions) is compared with the same list, never with the
request's own ``Host`` alone: it passes when it is exactly this request's (already checked)
``Host`` and scheme, or a name of the allow-list. A loopback name or IP literal on another port
or address is another origin and is refused.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::"})  # noqa: S104 - names of a wildcard bind
MAX_HOST_CHARS = 255
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class HostPort:
    """A host name or IP literal (lower case, no brackets, no trailing dot) and its port."""

    name: str
    port: int | None

    @property
    def ip_literal(self) -> bool:
        return is_ip_literal(self.name)

    def __str__(self) -> str:
        shown = f"[{self.name}]" if ":" in self.name else self.name
        return shown if self.port is None else f"{shown}:{self.port}"


def is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def parse_host(value: str) -> HostPort | None:
    """``name``, ``name:port``, ``1.2.3.4[:port]`` or ``[v6][:port]``; None when malformed."""
    text = value.strip().lower()
    if not text or len(text) > MAX_HOST_CHARS:
        return None
    if text.startswith("["):
        inside, sep, rest = text[1:].partition("]")
        if not sep or ":" not in inside or not is_ip_literal(inside):
            return None
        name, port_text = inside, rest.removeprefix(":") if rest else None
        if rest and not rest.startswith(":"):
            return None
    else:
        name, sep, port_text = text.partition(":")
        if not sep:
            port_text = None
        name = name.removesuffix(".")
        if not (_NAME.fullmatch(name) or is_ip_literal(name)):
            return None
    if port_text is None:
        return HostPort(name, None)
    if not port_text.isdigit() or int(port_text) > 65535:
        return None
    return HostPort(name, int(port_text))


def check_allowed_host(value: str) -> str:
    """One ``allowed_hosts`` entry, normalised; ``ValueError`` saying what is wrong."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("an allowed host must be a non-empty host name")
    if "*" in value or "/" in value or "@" in value:
        raise ValueError(
            f"{value!r}: write a plain host name or host:port (no scheme, path or wildcard)"
        )
    parsed = parse_host(value)
    if parsed is None or parsed.port == 0:
        raise ValueError(f"{value!r} is not a host name, host:port, IP address or [IPv6]:port")
    return str(parsed)


class HostPolicy:
    """The names one server answers to: loopback, its bound host, IP literals, ``allowed``.

    ``setting`` names the allow-list in refusals (``dashboard.allowed_hosts``).
    """

    def __init__(self, bound_host: str, allowed: Iterable[str], setting: str) -> None:
        self.setting = setting
        self.builtin = set(LOOPBACK_NAMES)
        bound = parse_host(bound_host if ":" not in bound_host else f"[{bound_host}]")
        if bound is not None and bound_host not in WILDCARD_BINDS:
            self.builtin.add(bound.name)
        self.allowed = [p for p in (parse_host(entry) for entry in allowed) if p is not None]

    def allows_host(self, header: str | None) -> bool:
        """May a request with this ``Host`` be answered? (None: no header, not a browser.)"""
        if header is None:
            return True
        host = parse_host(header)
        if host is None:
            return False
        return host.ip_literal or host.name in self.builtin or self._listed(host)

    def _listed(self, host: HostPort) -> bool:
        for entry in self.allowed:
            if entry.name != host.name:
                continue
            if entry.port is None or entry.port == host.port:
                return True
            if host.port is None and entry.port in _DEFAULT_PORTS.values():
                return True
        return False

    def origin_refusal(self, origin: str, host_header: str | None, scheme: str) -> str | None:
        """None when ``origin`` is one of ours for a request to ``host_header``, else why."""
        parts = urlsplit(origin)
        try:
            origin_port = parts.port
        except ValueError:
            return f"foreign Origin {origin[:100]!r}"
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            return f"foreign Origin {origin[:100]!r}"
        name = parts.hostname.removesuffix(".")
        port = origin_port or _DEFAULT_PORTS[parts.scheme]
        host = parse_host(host_header) if host_header is not None else None
        own = (
            host is not None
            and parts.scheme == scheme
            and name == host.name
            and port == (host.port or _DEFAULT_PORTS.get(scheme))
        )
        if own and self.allows_host(host_header):
            return None  # exactly this request's own Host, one of ours
        candidate = HostPort(name, port)
        if not candidate.ip_literal and name not in self.builtin and self._listed(candidate):
            return None
        return f"foreign Origin {origin[:100]!r} (not this server's Host nor in {self.setting})"

    def refusal(self, header: str | None) -> str:
        """The one-line reason a refused request gets (and the log repeats)."""
        shown = (header or "")[:100]
        return (
            f"misdirected request: Host {shown!r} is not a name of this server; "
            f"add it to {self.setting} if it is\n"
        )
