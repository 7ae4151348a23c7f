"""``python -m worker.http.probe`` (the Docker and compose health check) against a real
worker: healthy while ``/readyz`` is 200, unhealthy with the reason once the store is gone,
and a clear failure when there is no HTTP endpoint to ask."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from tests.integration.test_worker_metrics import get, started
from tests.support.processes import ROOT, Fleet
from tests.support.waiting import wait_until
from worker.embedded import EmbeddedServer, free_port

pytestmark = pytest.mark.integration


async def probe(settings_file: Path, **env: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "worker.http.probe",
        cwd=ROOT,
        env={**os.environ, "SEEN_SETTINGS_FILE": str(settings_file), **env},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(20):
        _, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, err.decode()


@pytest.mark.timeout(90)
async def test_probe_follows_readyz(private_server: EmbeddedServer, tmp_path: Path) -> None:
    port = free_port()
    with Fleet(tmp_path, private_server.addr, http={"addr": f"0.0.0.0:{port}"}) as fleet:
        (worker,) = fleet.start(1, SEEN_HTTP_METRICS_TOKEN="t" * 32)
        await started(worker, port)
        assert await probe(fleet.settings_file) == (0, "")  # a wildcard bind, asked on loopback
        private_server.stop()

        async def unready() -> bool:
            return get(port, "/readyz")[0] == 503

        await wait_until(unready, 10, "/readyz 503 without the store")
        code, err = await probe(fleet.settings_file)
        assert code == 1 and "answered 503" in err and "queue store" in err, err
    code, err = await probe(fleet.settings_file)
    assert code == 1 and "unreachable" in err, err  # the worker is gone
    code, err = await probe(fleet.settings_file, SEEN_HTTP_ENABLED="false")
    assert code == 1 and "seen-worker health --this-host" in err, err
