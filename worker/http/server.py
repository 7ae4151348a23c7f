"""``HttpServer``: ``/metrics``, ``/livez``, ``/readyz`` of one worker on its event loop.

A minimal HTTP/1.1 server on ``asyncio.start_server`` (one request per connection, GET only,
bounded reads and writes): three fixed routes do not justify a web framework in the worker, and
the exposition itself is ``prometheus_client``'s (text 0.0.4, or OpenMetrics when the
``Accept`` header asks for it). ``/livez`` is answered by the loop itself, which is the proof.

Every route first checks the ``Host`` (``worker.http.hosts``): loopback names, IP addresses
(Kubernetes probes send the pod IP) and ``http.allowed_hosts`` are answered, any other name
gets 421 (a page on a DNS name rebound to this address must not read ``/metrics``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import logging
from collections.abc import Callable

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from cache.ratelog import RateLimitedLog
from worker.http.hosts import HostPolicy
from worker.settings import HttpSettings

log = logging.getLogger("seen.worker.http")

READ_WITHIN_S = 5.0
"""A client gets this long to send its request head."""
WRITE_WITHIN_S = 5.0
MAX_HEAD_BYTES = 16384
CLOSE_WITHIN_S = 1.0

Readiness = Callable[[], str | None]
"""Returns None when ready, else a short reason."""

_REASONS = {200: "OK", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed"}
_REASONS |= {400: "Bad Request", 421: "Misdirected Request", 503: "Service Unavailable"}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class HttpServer:
    """One owner: ``start()`` binds, ``aclose()`` stops (bounded)."""

    def __init__(
        self, settings: HttpSettings, registry: CollectorRegistry, readiness: Readiness
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.readiness = readiness
        self.hosts = HostPolicy(
            settings.host_port()[0], settings.allowed_hosts, "http.allowed_hosts"
        )
        self.refusals = RateLimitedLog(log)
        self.port: int | None = None
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        host, port = self.settings.host_port()
        self._server = await asyncio.start_server(self._serve, host, port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("http: /metrics, /livez, /readyz on %s:%d", host, self.port)
        if self.settings.metrics_token is None and not is_loopback(host):
            log.warning(
                "http.addr %s is not a loopback address and http.metrics_token "
                "(SEEN_HTTP_METRICS_TOKEN) is not set: /metrics is open to anyone who can "
                "reach this address",
                self.settings.addr,
            )

    async def aclose(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_WITHIN_S):
                await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(READ_WITHIN_S):
                head = await reader.readuntil(b"\r\n\r\n")
            status, headers, body = self._route(head)
            async with asyncio.timeout(WRITE_WITHIN_S):
                writer.write(_response(status, headers, body))
                await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except ConnectionError:
            pass
        except Exception:
            log.exception("http: request failed")
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CLOSE_WITHIN_S):
                    await writer.wait_closed()

    def _route(self, head: bytes) -> tuple[int, dict[str, str], bytes]:
        if len(head) > MAX_HEAD_BYTES:
            return _text(400, "request head too large")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            return _text(400, "bad request line")
        method, target, _version = parts
        headers: dict[str, str] = {}
        hosts: list[str] = []
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
                if name.strip().lower() == "host":
                    hosts.append(value.strip())
        path = target.split("?", 1)[0]
        if len(hosts) > 1 or not self.hosts.allows_host(hosts[0] if hosts else None):
            shown = hosts[0] if len(hosts) == 1 else f"{len(hosts)} Host headers"
            self.refusals.warning(
                "http: refused %s for Host %r (not in http.allowed_hosts)", path[:100], shown[:100]
            )
            return _text(421, self.hosts.refusal(shown).rstrip("\n"))
        if path not in ("/metrics", "/livez", "/readyz"):
            return _text(404, "not found")
        if method != "GET":
            status, extra, body = _text(405, "GET only")
            return status, {**extra, "Allow": "GET"}, body
        if path == "/livez":
            return _text(200, "ok")
        if path == "/readyz":
            reason = self.readiness()
            if reason is None:
                return _json(200, {"ready": True})
            return _json(503, {"ready": False, "reason": reason})
        if not self._authorized(headers.get("authorization", "")):
            status, extra, body = _text(401, "bearer token required")
            return status, {**extra, "WWW-Authenticate": 'Bearer realm="metrics"'}, body
        encoder, content_type = choose_encoder(headers.get("accept", ""))
        return 200, {"Content-Type": content_type}, encoder(self.registry)

    def _authorized(self, header: str) -> bool:
        token = self.settings.metrics_token
        if token is None:
            return True
        scheme, _, given = header.partition(" ")
        expected = token.get_secret_value().encode()
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected)


def _text(status: int, text: str) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "text/plain; charset=utf-8"}, (text + "\n").encode()


def _json(status: int, value: object) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json"}, json.dumps(value).encode()


def _response(status: int, headers: dict[str, str], body: bytes) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, '')}"]
    all_headers = {**headers, "Content-Length": str(len(body)), "Connection": "close"}
    lines += [f"{k}: {v}" for k, v in all_headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
