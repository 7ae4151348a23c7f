"""What the store did during a measurement: commands (INFO commandstats) and CPU (INFO cpu).

The deltas over a run divided by its jobs give the store's cost per job, comparable between
engines measured against the same server in the same run. INFO itself is left out. Commands
count what scripts run too (INFO commandstats counts each ``redis.call``), for every queue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from redis import Redis as SyncRedis
from redis.asyncio import Redis


@dataclass(frozen=True)
class StoreSample:
    commands: int
    cpu_s: float
    by_command: dict[str, list[int]] = field(default_factory=dict)
    """Per command: [calls, microseconds] (INFO commandstats)."""

    @classmethod
    def of(cls, commandstats: dict[str, Any], cpu: dict[str, Any]) -> StoreSample:
        by_command = {
            k.removeprefix("cmdstat_"): [int(v["calls"]), int(v["usec"])]
            for k, v in commandstats.items()
            if isinstance(v, dict) and k != "cmdstat_info"
        }
        calls = sum(c for c, _ in by_command.values())
        cpu_s = float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"])
        return cls(calls, cpu_s, by_command)

    @classmethod
    def total(cls, samples: list[StoreSample]) -> StoreSample:
        """Several servers' samples as one (a cluster's nodes): commands, CPU and time by
        command added up."""
        by_command: dict[str, list[int]] = {}
        for s in samples:
            for name, (calls, usec) in s.by_command.items():
                c, u = by_command.get(name, [0, 0])
                by_command[name] = [c + calls, u + usec]
        return cls(sum(s.commands for s in samples), sum(s.cpu_s for s in samples), by_command)

    def as_dict(self) -> dict[str, Any]:
        return {"commands": self.commands, "cpu_s": self.cpu_s, "by_command": self.by_command}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StoreSample:
        """A sample a worker process reported (``as_dict``; BullMQ's script writes the same)."""
        by_command = {k: [int(c), int(u)] for k, (c, u) in data.get("by_command", {}).items()}
        return cls(int(data["commands"]), float(data["cpu_s"]), by_command)

    def breakdown(self, later: StoreSample, jobs: int, top: int = 12) -> dict[str, Any]:
        """Where the store's time went, per job: its CPU, the time spent in scripts, and the
        ``top`` commands by microseconds (calls and us per job; a script's time includes the
        commands it ran, which INFO also counts on their own). CPU beyond the time in commands
        is the server's work around them: reading, parsing and replying, once per round trip."""
        rows = []
        for name, (calls, usec) in later.by_command.items():
            c0, u0 = self.by_command.get(name, [0, 0])
            if calls - c0:
                rows.append((usec - u0, name, calls - c0))
        rows.sort(reverse=True)
        scripts = sum(u for u, n, _ in rows if n in SCRIPTS)
        return {
            "cpu_us": round((later.cpu_s - self.cpu_s) * 1e6 / jobs, 1),
            "scripts_us": round(scripts / jobs, 1),
            "by_command": {
                name: {"calls": round(calls / jobs, 3), "us": round(usec / jobs, 2)}
                for usec, name, calls in rows[:top]
            },
        }

    def per_job(self, later: StoreSample, jobs: int) -> dict[str, float]:
        """Commands and CPU microseconds per job from this sample to ``later``."""
        return {
            "store_cmds_per_job": round((later.commands - self.commands) / jobs, 2),
            "store_cpu_us_per_job": round((later.cpu_s - self.cpu_s) * 1e6 / jobs, 1),
        }


SCRIPTS = frozenset({"evalsha", "eval", "evalsha_ro", "eval_ro", "fcall", "fcall_ro"})


async def sample(client: Redis) -> StoreSample:
    return StoreSample.of(await client.info("commandstats"), await client.info("cpu"))


def sample_sync(client: SyncRedis) -> StoreSample:
    stats: dict[str, Any] = client.info("commandstats")  # type: ignore[assignment]
    cpu: dict[str, Any] = client.info("cpu")  # type: ignore[assignment]
    return StoreSample.of(stats, cpu)
