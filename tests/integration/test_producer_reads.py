"""The producer side of ARQ reads job and result records through the checked deserializer:
``Job.info``, ``Job.result_info``, ``Job.result`` and ``queued_jobs``. (ARQ's
``all_job_results`` is left out on purpose: it lists results with ``KEYS``, which Dragonfly
truncates at 8192 and the MONITOR lane refuses; producers read results by job id.)"""

from __future__ import annotations

from redis.asyncio import Redis

from tests.conftest import TestServer
from tests.support.processes import arq_pool, run_burst_worker, worker_settings
from tests.support.updates import upd


async def test_producer_reads_queued_jobs_and_results(server: TestServer, raw: Redis) -> None:
    pool = arq_pool(server.addr)  # ARQ's own producer reads: ARQ's layout
    payload = upd("dl-reads", 1).model_dump(mode="json")
    try:
        job = await pool.enqueue_job("update_progress", payload, _job_id="reads-1")
        assert job is not None
        info = await job.info()
        assert info is not None and info.function == "update_progress"
        assert list(info.args) == [payload] and info.score is not None
        assert [j.function for j in await pool.queued_jobs()] == ["update_progress"]

        await run_burst_worker(worker_settings(server.addr, queue={"layout": "arq"}))

        assert await job.result(timeout=5, poll_delay=0.05) == "applied"
        result = await job.result_info()
        assert result is not None and result.success and result.job_id == "reads-1"
        # the same record read by key, as all_job_results would read it after its KEYS
        assert result.result == "applied" and await raw.exists("arq:result:reads-1")
    finally:
        await pool.aclose()
