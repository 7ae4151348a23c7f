"""Which due ids to try next, fairly across the queue's shards.

Every ``poll_delay`` (a tick) the engine reads the due ids of every shard in one pipelined round
trip (plus, on the same trip, the pause flag and, while jobs run here, the abort sets). Between
ticks, when slots free up, it reads only the shards that had due jobs ("hot" shards): a shard
that was empty is read again at the next tick, so an idle shard costs one read per
``poll_delay`` and a busy worker does not re-read empty shards each time a slot frees. Ids a
read returned beyond the free slots are kept (at most ``poll_delay`` old) and tried first next
time: only the claim's round trip, since the claim re-checks each id.

Free slots go to shards in turn, starting one further round the shards every time
(``allocate``), and a shard takes as many as it has ids for: so no shard starves while another
is hot (each is first once every ``shards`` fills), and a claim call still carries a whole batch
of one shard instead of a sliver of each.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Container, Sequence
from dataclasses import dataclass, field

from jobs.wire.layout import QueueShard


@dataclass(slots=True)
class ShardIds:
    """The ids a shard's last read returned that were not tried yet."""

    ids: deque[str] = field(default_factory=deque)
    read_at: float = -1.0
    hot: bool = True
    """Its last read returned due ids (or it was never read)."""


class Picker:
    """Candidate ids per shard and the rotation that shares free slots among shards."""

    def __init__(self, shards: Sequence[QueueShard], max_age_s: float) -> None:
        self.shards = list(shards)
        self.max_age_s = max_age_s
        self.state = [ShardIds() for _ in self.shards]
        self._next = 0

    def to_read(self, now: float, tick: bool) -> list[QueueShard]:
        """The shards to read now: all at a tick; else the hot ones with no fresh ids left."""
        out = []
        for shard, state in zip(self.shards, self.state, strict=True):
            fresh = bool(state.ids) and now - state.read_at <= self.max_age_s
            if tick or (state.hot and not fresh):
                out.append(shard)
        return out

    def store(self, shard: QueueShard, ids: Sequence[str], now: float) -> None:
        """What a read of ``shard`` returned (its due ids, oldest first)."""
        state = self.state[shard.index]
        state.ids = deque(ids)
        state.read_at = now
        state.hot = bool(ids)

    def allocate(
        self, free: int, now: float, skip: Container[str]
    ) -> list[tuple[QueueShard, list[str]]]:
        """Up to ``free`` ids to claim, taken whole-shard-first in rotation; ids in ``skip``
        (running here) are dropped."""
        picked: list[tuple[QueueShard, list[str]]] = []
        count = len(self.shards)
        start = self._next
        self._next = (self._next + 1) % count
        for step in range(count):
            if free <= 0:
                break
            index = (start + step) % count
            state = self.state[index]
            if not state.ids or now - state.read_at > self.max_age_s:
                state.ids.clear()
                continue
            ids: list[str] = []
            while state.ids and len(ids) < free:
                job_id = state.ids.popleft()
                if job_id not in skip:
                    ids.append(job_id)
            if ids:
                picked.append((self.shards[index], ids))
                free -= len(ids)
        return picked

    def has_candidates(self, now: float) -> bool:
        return any(s.ids and now - s.read_at <= self.max_age_s for s in self.state)
