"""BullMQ for Node, an optional peer of the bench (``bench/node``: ``bullmq`` and ``ioredis``
pinned in package.json and package-lock.json; ``make bench`` runs ``npm ci`` there when npm is
installed).

``available()`` says why BullMQ cannot run (no node, or no ``npm ci`` done) or None when it can;
the drain and the pickup each run ``bench/node/bullmq_bench.mjs`` in processes of their own (the
enqueue, then one Worker process), as ours and ARQ's workers run.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from bench.procs import Child, run_to_end

NODE_DIR = Path(__file__).resolve().parent / "node"
SCRIPT = "bullmq_bench.mjs"


def node() -> str | None:
    return shutil.which("node")


def available() -> str | None:
    """None when BullMQ can run, else why not (reported in the BullMQ rows)."""
    if node() is None or shutil.which("npm") is None:
        return "skipped: node/npm not found"
    if not (NODE_DIR / "node_modules" / "bullmq" / "package.json").is_file():
        return "skipped: bench/node has no node_modules (run `npm ci` in bench/node)"
    return None


def versions() -> dict[str, str]:
    """node and the installed bullmq/ioredis versions (for the results' JSON)."""
    out: dict[str, str] = {}
    for package in ("bullmq", "ioredis"):
        meta = NODE_DIR / "node_modules" / package / "package.json"
        if meta.is_file():
            out[package] = json.loads(meta.read_text())["version"]
    return out


def _cmd(*args: object) -> list[str]:
    binary = node()
    assert binary is not None
    return [binary, SCRIPT, *(str(a) for a in args)]


async def drain(addr: str, queue: str, jobs: int, concurrency: int) -> dict[str, Any]:
    """Enqueue ``jobs`` no-op jobs (addBulk), then one Worker at ``concurrency`` runs them; its
    probe report (``bench.probe``'s fields)."""
    await run_to_end(_cmd("enqueue", addr, queue, jobs), "bullmq enqueue", NODE_DIR)
    return await run_to_end(
        _cmd("drain", addr, queue, jobs, concurrency), f"bullmq c={concurrency}", NODE_DIR
    )


async def pickup(
    addr: str, queue: str, samples: int, concurrency: int, max_pause_s: float
) -> list[float]:
    """Enqueue-to-start latencies (ms) on an idle Worker at ``concurrency``, one job at a time
    after a random pause of up to ``max_pause_s`` (BullMQ's ``timestamp``/``processedOn``)."""
    worker = await Child.start(_cmd("serve", addr, queue, concurrency), "bullmq serve", NODE_DIR)
    try:
        await worker.ready()
        pause_ms = round(max_pause_s * 1000)
        report = await run_to_end(
            _cmd("pickup", addr, queue, samples, pause_ms), "bullmq pickup", NODE_DIR
        )
    finally:
        await worker.stop()
    return [float(v) for v in report["latencies_ms"]]
