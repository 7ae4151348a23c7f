"""The cluster figures of issue 20 (jobs/s and store CPU per job per node, 1, 2 and 4 worker
processes, the sharded queue on a 3-primary Redis Cluster): their place in the bench.

They are measured with the same pieces as the one-server figures: ``drains.fleet`` runs our
worker processes on the sharded layout with the queue's settings passed through
(``overrides``, e.g. ``{"queue.addr": <a primary>, "queue.cluster": True}``) and samples INFO
on every node it is given (``nodes``: the primaries of ``tests/support/cluster.TestCluster``),
reporting store CPU and commands per job per node. They run once the worker takes a cluster
queue (``queue.cluster`` in the settings model); until then ``cluster_status`` says why they
are pending, and the results' JSON carries that line.
"""

from __future__ import annotations

from worker.settings import QueueSettings


def cluster_status() -> dict[str, str]:
    """Whether this tree's worker can run the queue on a Redis Cluster."""
    if "cluster" not in QueueSettings.model_fields:
        return {
            "status": "pending",
            "why": "this tree's worker has no queue.cluster setting: the sharded queue on a "
            "Redis Cluster is not in it yet, so no cluster figures were measured",
        }
    return {
        "status": "not measured",
        "why": "the worker takes a cluster queue; run drains.fleet with the cluster's "
        "primaries as nodes (module docstring)",
    }
