"""A fenced resource and a warmup source that writes to it under a lock (partition tests).

``fenced_source`` runs inside worker processes by dotted path (``warmup.callables``, the same
hook as ``tests.support.sources``; nothing of it ships in the product): it holds the lock
``partition:resource`` with ``manager.locks.hold`` and, for ``SEEN_TEST_SLOW_SECONDS``, writes
to the fenced resource non-stop with its lock's fencing token.

The resource is what docs/coordination.md asks of anything a lock protects: it remembers the
highest fence it has accepted and refuses a write with a lower one. Every write that reaches the
store is recorded, accepted or refused, with the server's clock, so the test can tell which
writes arrived after a host was cut off (a write stuck in a cut host's TCP send buffer is
delivered when the cable is back: the case fencing exists for).
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from typing import Any

from cache.manager import CacheManager

RESOURCE_LOCK = "partition:resource"
LOCK_TTL_S = 2.0
"""The source's lock lease (renewed every third); a cut host loses it within this."""
WRITE_GAP_S = 0.02

_TAG = "seen:test:fenced:{partition}"
TOP, ACCEPTED, REFUSED = f"{_TAG}:top", f"{_TAG}:accepted", f"{_TAG}:refused"

# Test-only (not shipped). KEYS: highest fence accepted, accepted log, refused log (one
# hashtag). ARGV: fence, writer, sequence number, client send time. Returns 1 accepted, 0
# refused. The entry records the server's TIME when the write arrived.
FENCED_WRITE = """
local fence = tonumber(ARGV[1])
local now = redis.call('TIME')
local entry = ARGV[2] .. ' ' .. ARGV[1] .. ' ' .. ARGV[3] .. ' ' .. ARGV[4] .. ' '
  .. now[1] .. '.' .. string.format('%06d', tonumber(now[2]))
local top = tonumber(redis.call('GET', KEYS[1]) or '0')
if fence < top then
  redis.call('RPUSH', KEYS[3], entry)
  return 0
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('RPUSH', KEYS[2], entry)
return 1
"""


@dataclass(frozen=True)
class Write:
    """One write as the resource saw it."""

    writer: int
    """The writing worker's pid."""
    fence: int
    seq: int
    sent: float
    """Wall-clock seconds when the writer sent it."""
    arrived: float
    """The server's clock when it arrived."""

    @classmethod
    def parse(cls, line: str) -> Write:
        writer, fence, seq, sent, arrived = line.split()
        return cls(int(writer), int(fence), int(seq), float(sent), float(arrived))


async def fenced_write(client: Any, fence: int, writer: int, seq: int) -> bool:
    """One write with ``fence``; False when the resource has seen a higher fence."""
    keys = [TOP, ACCEPTED, REFUSED]
    args = [fence, writer, seq, f"{time.time():.6f}"]
    return bool(await client.eval(FENCED_WRITE, len(keys), *keys, *args))


async def read_writes(client: Any) -> tuple[list[Write], list[Write]]:
    """(accepted, refused) writes in arrival order."""
    accepted = [Write.parse(_text(x)) for x in await client.lrange(ACCEPTED, 0, -1)]
    refused = [Write.parse(_text(x)) for x in await client.lrange(REFUSED, 0, -1)]
    return accepted, refused


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def fenced_source(manager: CacheManager) -> int:
    """Hold the lock and write with its fence for ``SEEN_TEST_SLOW_SECONDS``; returns the
    number of accepted writes. A lost lease cancels the writes and raises ``LockLost``."""
    seconds = float(os.environ.get("SEEN_TEST_SLOW_SECONDS", "3"))
    writer, accepted, seq = os.getpid(), 0, 0
    async with manager.locks.hold(RESOURCE_LOCK, ttl=LOCK_TTL_S, wait=15) as lock:
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            seq += 1
            accepted += await fenced_write(manager.client, lock.fence, writer, seq)
            await asyncio.sleep(WRITE_GAP_S)
    return accepted
