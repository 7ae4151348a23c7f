"""What the store did during a measurement: commands (INFO commandstats) and CPU (INFO cpu).

The deltas over a run divided by its jobs give the store's cost per job, comparable between
engines measured against the same server in the same run. INFO itself is left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis import Redis as SyncRedis
from redis.asyncio import Redis


@dataclass(frozen=True)
class StoreSample:
    commands: int
    cpu_s: float

    @classmethod
    def of(cls, commandstats: dict[str, Any], cpu: dict[str, Any]) -> StoreSample:
        calls = sum(
            int(v["calls"])
            for k, v in commandstats.items()
            if isinstance(v, dict) and k != "cmdstat_info"
        )
        return cls(calls, float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"]))

    def per_job(self, later: StoreSample, jobs: int) -> dict[str, float]:
        """Commands and CPU microseconds per job from this sample to ``later``."""
        return {
            "store_cmds_per_job": round((later.commands - self.commands) / jobs, 2),
            "store_cpu_us_per_job": round((later.cpu_s - self.cpu_s) * 1e6 / jobs, 1),
        }


async def sample(client: Redis) -> StoreSample:
    return StoreSample.of(await client.info("commandstats"), await client.info("cpu"))


def sample_sync(client: SyncRedis) -> StoreSample:
    stats: dict[str, Any] = client.info("commandstats")  # type: ignore[assignment]
    cpu: dict[str, Any] = client.info("cpu")  # type: ignore[assignment]
    return StoreSample.of(stats, cpu)
