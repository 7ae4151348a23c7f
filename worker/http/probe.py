"""``python -m worker.http.probe``: the container health check, answered by ``/readyz``.

Exit 0 when the worker in this container answers ``/readyz`` with 200, else 1 with the reason
on stderr. It asks the worker process itself (running, heartbeat fresh, queue store reachable,
not stopping) instead of reading heartbeats from the store as ``seen-worker health`` does, so
it needs no store connection; it uses only ``urllib`` (the slim image has no curl). The port is
the one of ``http.addr`` (settings file and ``SEEN_HTTP_ADDR``); a wildcard bind is probed on
loopback. With ``http.enabled = false`` or port 0 there is nothing to ask: it says so and
fails, and ``seen-worker health --this-host`` is the health check to use instead.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

from worker.settings import load_settings

TIMEOUT_S = 5.0


def readyz_url(host: str, port: int) -> str:
    """Where this container's worker answers (``http.addr``'s port, a wildcard on loopback)."""
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 - a wildcard bind, probed on loopback
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/readyz"


def main() -> int:
    http = load_settings().http
    if not http.enabled or http.host_port()[1] == 0:
        print(
            "probe: http is disabled or on port 0; use `seen-worker health --this-host`",
            file=sys.stderr,
        )
        return 1
    url = readyz_url(*http.host_port())
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:  # noqa: S310 - http only
            if response.status == 200:
                return 0
            print(f"probe: {url} answered {response.status}", file=sys.stderr)
    except urllib.error.HTTPError as exc:
        body = exc.read().decode(errors="replace")[:300]
        print(f"probe: {url} answered {exc.code}: {body}", file=sys.stderr)
    except OSError as exc:
        print(f"probe: {url} unreachable: {exc}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
