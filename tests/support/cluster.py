"""A real Redis Cluster for the tests: 3 primaries and 3 replicas of ``redis-server``.

Each node is an ``EmbeddedServer`` (free loopback port, own folder) started with
``cluster-enabled yes`` and a short ``cluster-node-timeout`` so a killed primary is replaced
in a second or two; ``redis-cli --cluster create`` forms the cluster. Every wait has a
deadline; ``stop()`` ends every process (SIGTERM, bounded wait, SIGKILL).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from types import TracebackType
from typing import Any, Self

from redis import Redis as SyncRedis

from worker.embedded import EmbeddedServer, EmbeddedServerError, free_port

CLUSTER_ENV = "SEEN_TEST_CLUSTER"
NODE_TIMEOUT_MS = 1000
"""``cluster-node-timeout``: a primary silent this long is marked failing; its replica takes
over about one to two timeouts later."""


class TestCluster:
    """Six nodes, formed into a cluster with one replica per primary."""

    __test__ = False

    def __init__(
        self, binary: str | None = None, *, primaries: int = 3, form_timeout: float = 30.0
    ) -> None:
        self.binary = binary or os.environ.get("SEEN_TEST_SERVER") or "redis-server"
        self.cli = shutil.which("redis-cli")
        self.form_timeout = form_timeout
        extra = (
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            str(NODE_TIMEOUT_MS),
            "--cluster-require-full-coverage",
            "no",
            "--cluster-allow-reads-when-down",
            "no",
            # a replica's full sync starts at once (Redis waits 5 s for more replicas by
            # default): a restarted node is a usable replica again within a second
            "--repl-diskless-sync-delay",
            "0",
        )
        # the bus port is named: the default (port + 10000) fails for a free port above 55535
        self.nodes = [
            EmbeddedServer(self.binary, extra_args=(*extra, "--cluster-port", str(free_port())))
            for _ in range(primaries * 2)
        ]

    @property
    def addr(self) -> str:
        """The ``cache.addr`` of the cluster: every node, comma-separated."""
        return ",".join(node.addr for node in self.nodes)

    def start(self) -> Self:
        if self.cli is None:
            raise EmbeddedServerError("redis-cli not found: apt-get install redis-tools")
        try:
            for node in self.nodes:
                node.start()
            subprocess.run(
                [
                    self.cli,
                    "--cluster",
                    "create",
                    *(node.addr for node in self.nodes),
                    "--cluster-replicas",
                    "1",
                    "--cluster-yes",
                ],
                check=True,
                capture_output=True,
                timeout=self.form_timeout,
            )
            self.wait_ok(self.form_timeout)
            self.wait_replicated(self.form_timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def admin(self, node: EmbeddedServer, timeout: float = 1.0) -> SyncRedis:
        return SyncRedis(
            host="127.0.0.1",
            port=node.port,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            decode_responses=True,
        )

    def _info(self, node: EmbeddedServer, section: str) -> dict[str, Any]:
        with self.admin(node) as client:
            info: dict[str, Any] = client.info(section)
            return info

    def cluster_info(self, node: EmbeddedServer) -> dict[str, str]:
        with self.admin(node) as client:
            info = client.execute_command("CLUSTER INFO")
        return {str(k): str(v) for k, v in info.items()}

    def primaries(self) -> list[EmbeddedServer]:
        """Running nodes that are primaries now."""
        return [
            n
            for n in self.nodes
            if n.running and self._info(n, "replication").get("role") == "master"
        ]

    def wait_ok(self, within: float) -> None:
        """Until every running node says ``cluster_state:ok`` with all slots served by three
        primaries, each with a connected replica (if it has one alive)."""
        deadline = time.monotonic() + within
        last = ""
        while time.monotonic() < deadline:
            try:
                states = [self.cluster_info(n) for n in self.nodes if n.running]
                if all(
                    s.get("cluster_state") == "ok" and s.get("cluster_slots_ok") == "16384"
                    for s in states
                ):
                    return
                last = repr(states[0])
            except Exception as exc:
                last = repr(exc)
            time.sleep(0.1)
        raise EmbeddedServerError(f"cluster not ok within {within}s: {last}")

    def wait_replicated(self, within: float) -> None:
        """Until every running primary has a replica online (its replica can be promoted)."""
        deadline = time.monotonic() + within
        last = ""
        while time.monotonic() < deadline:
            try:
                lagging = [
                    n.addr
                    for n in self.primaries()
                    if (self._info(n, "replication").get("slave0") or {}).get("state") != "online"
                ]
                if not lagging:
                    return
                last = f"no replica online for {lagging}"
            except Exception as exc:
                last = repr(exc)
            time.sleep(0.1)
        raise EmbeddedServerError(f"replicas not online within {within}s: {last}")

    def wait_failover(self, slot: int, old: EmbeddedServer, within: float) -> EmbeddedServer:
        """Until a node other than ``old`` serves ``slot`` (its replica was promoted) and the
        cluster is ok again; the new primary. Restart a killed primary only after this: back
        sooner, it would keep its slots with the empty dataset it restarted with."""
        deadline = time.monotonic() + within
        last = ""
        while time.monotonic() < deadline:
            try:
                owner = self.node_for_slot(slot)
                if owner is not old:
                    self.wait_ok(max(0.1, deadline - time.monotonic()))
                    return owner
                last = f"slot {slot} still served by {old.addr}"
            except Exception as exc:
                last = repr(exc)
            time.sleep(0.1)
        raise EmbeddedServerError(f"no failover within {within}s: {last}")

    def flush(self) -> None:
        """FLUSHALL on every primary: a clean cluster for the next test."""
        for node in self.primaries():
            with self.admin(node) as client:
                client.flushall()

    def node_for_slot(self, slot: int) -> EmbeddedServer:
        """The primary that serves ``slot`` now, as a running node sees the cluster."""
        for asked in self.nodes:
            if not asked.running:
                continue
            with self.admin(asked) as client:
                for entry in client.execute_command("CLUSTER SLOTS"):
                    start, end, owner = int(entry[0]), int(entry[1]), entry[2]
                    if start <= slot <= end:
                        port = int(owner[1])
                        return next(n for n in self.nodes if n.port == port)
        raise EmbeddedServerError(f"no running node knows who serves slot {slot}")

    def slots_served_by(self, node: EmbeddedServer) -> set[int]:
        """The slots ``node`` serves now, as it sees the cluster."""
        slots: set[int] = set()
        with self.admin(node) as client:
            for entry in client.execute_command("CLUSTER SLOTS"):
                if int(entry[2][1]) == node.port:
                    slots.update(range(int(entry[0]), int(entry[1]) + 1))
        return slots

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
