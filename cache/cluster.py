"""What the cache layer needs on a Redis Cluster that redis-py 5's asyncio cluster client lacks.

``SeenCluster`` is ``redis.asyncio.cluster.RedisCluster`` plus MULTI/EXEC transactions whose
keys share one hash slot (``pipeline(transaction=True)``): every transaction the cache layer
runs keeps its keys under one ``{hashtag}``, so it is valid on a cluster, but redis-py 5 (the
version ARQ allows) refuses transactions on its cluster pipeline. ``SlotTransaction`` runs
redis-py's own single-node ``Pipeline`` on a connection of the node that owns the slot, and
re-reads the topology and tries again (bounded) when that node failed or moved the slot.

The helpers below (``slot_groups``, ``primaries``) are what callers use to split a multi-key
read per slot and to visit every primary (SCAN, INFO).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from redis import exceptions as redis_exc
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.asyncio.connection import Connection
from redis.crc import key_slot

from cache.errors import CacheError

T = TypeVar("T")

RETRY_TOPOLOGY = (
    redis_exc.ConnectionError,
    redis_exc.TimeoutError,
    redis_exc.MovedError,
    redis_exc.AskError,
    redis_exc.ClusterDownError,
    redis_exc.TryAgainError,
    redis_exc.SlotNotCoveredError,
)
"""Errors after which the slot's owner may have changed: re-read the topology, try again."""

TOPOLOGY_PAUSE = 0.25
"""Seconds between transaction attempts while the cluster elects a new primary."""


def is_cluster(client: Redis) -> bool:
    """True for the cluster client (typed as ``Redis`` everywhere: the commands are the same)."""
    return isinstance(client, RedisCluster)


def slot_of(key: str | bytes) -> int:
    """The hash slot of ``key`` (the ``{hashtag}`` decides, as in Redis Cluster)."""
    return int(key_slot(key.encode() if isinstance(key, str) else key))


def slot_groups(keys: Sequence[str]) -> list[list[int]]:
    """Indexes of ``keys`` grouped by hash slot, groups in first-seen order."""
    groups: dict[int, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(slot_of(key), []).append(i)
    return list(groups.values())


async def primaries(client: Redis) -> list[ClusterNode]:
    """Every primary of the cluster (after the client has read the topology)."""
    assert isinstance(client, RedisCluster)
    await client.initialize()
    return list(client.get_primaries())


def merge_in_order(size: int, groups: Iterable[tuple[list[int], Sequence[T]]]) -> list[T | None]:
    """Put per-group replies back in the callers' key order."""
    out: list[T | None] = [None] * size
    for indexes, values in groups:
        for i, value in zip(indexes, values, strict=True):
            out[i] = value
    return out


class _NodePool:
    """The connection-pool face of one cluster node, for redis-py's single-node ``Pipeline``."""

    def __init__(self, node: ClusterNode) -> None:
        self.node = node

    async def get_connection(self, *_args: Any, **_kwargs: Any) -> Connection:
        connection = self.node.acquire_connection()
        connection.abandoned = False  # type: ignore[attr-defined]  # ours now (SeenCluster)
        return connection

    async def release(self, connection: Connection) -> None:
        # ClusterNode has no public release: its own execute_command hands connections back so
        self.node._free.append(connection)


class SlotTransaction(Pipeline):
    """MULTI/EXEC on the node owning the slot of its keys (all keys must share that slot)."""

    def __init__(self, cluster: SeenCluster) -> None:
        super().__init__(
            connection_pool=None,  # type: ignore[arg-type]  # chosen per attempt in execute()
            response_callbacks=cluster.response_callbacks,
            transaction=True,
            shard_hint=None,
        )
        self.owner = cluster

    async def _slot(self, stack: Sequence[Any]) -> int:
        slots: set[int] = set()
        for args, _options in stack:
            keys = await self.owner.commands_parser.get_keys(*args)
            slots.update(slot_of(k) for k in keys or ())
        if len(slots) != 1:
            raise CacheError(
                f"a transaction on a cluster needs keys of exactly one hash slot, got {len(slots)}"
            )
        return slots.pop()

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        stack = list(self.command_stack)
        if not stack:
            return []
        await self.owner.initialize()
        slot = await self._slot(stack)
        attempts = 1 + self.owner.cluster_error_retry_attempts
        for attempt in range(attempts):
            try:
                await self.owner.initialize()
                node = self.owner.nodes_manager.get_node_from_slot(slot)
                self.connection_pool = _NodePool(node)  # type: ignore[assignment]
                self.command_stack = list(stack)
                async with self.owner.permit():
                    result: list[Any] = await super().execute(raise_on_error)
                return result
            except RETRY_TOPOLOGY:
                if attempt + 1 >= attempts:
                    raise
                await self.owner.aclose()  # the next attempt re-reads slots and primaries
                await asyncio.sleep(TOPOLOGY_PAUSE)
        raise AssertionError("unreachable")  # pragma: no cover


class SplitTransaction(SlotTransaction):
    """One MULTI/EXEC per hash slot of its commands, run concurrently, replies in call order.

    Only for callers whose data stays correct when the slot groups land separately (each
    command's own keys still share one slot); everything else uses ``SlotTransaction``, which
    refuses keys of several slots."""

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        stack = list(self.command_stack)
        self.command_stack = []
        if not stack:
            return []
        await self.owner.initialize()
        groups: dict[int, list[int]] = {}
        for i, entry in enumerate(stack):
            groups.setdefault(await self._slot([entry]), []).append(i)

        async def one(indexes: list[int]) -> list[Any]:
            part = SlotTransaction(self.owner)
            part.command_stack = [stack[i] for i in indexes]
            return await part.execute(raise_on_error)

        replies = await asyncio.gather(*(one(ix) for ix in groups.values()))
        return list(merge_in_order(len(stack), zip(groups.values(), replies, strict=True)))


def per_slot_transaction(client: Redis) -> Any:
    """``client.pipeline(transaction=True)`` on one instance; on a cluster a transaction that
    is atomic per hash slot only (``SplitTransaction``)."""
    if isinstance(client, SeenCluster):
        return SplitTransaction(client)
    return client.pipeline(transaction=True)


class SlotPipeline(ClusterPipeline):
    """redis-py's cluster pipeline (one batch per node, sent concurrently) under a permit."""

    def __init__(self, cluster: SeenCluster) -> None:
        super().__init__(cluster)
        self.owner = cluster

    async def execute(
        self, raise_on_error: bool = True, allow_redirections: bool = True
    ) -> list[Any]:
        async with self.owner.permit():
            try:
                result: list[Any] = await super().execute(raise_on_error, allow_redirections)
            except asyncio.CancelledError:
                self.owner.reclaim()
                raise
            except AttributeError as exc:
                # redis-py 5.3: after error replies it reads the default node, which is None
                # while another task's failed command has reset the topology (failover)
                if self.owner.get_default_node() is not None:
                    raise
                raise redis_exc.ConnectionError("cluster topology reset during a batch") from exc
            return result


class SeenCluster(RedisCluster):
    """``RedisCluster`` with one-slot transactions and a bounded number of commands in flight.

    ``pipeline(transaction=True)`` is a ``SlotTransaction``. redis-py's cluster nodes fail at
    once with ``MaxConnectionsError`` when their connections are all busy; the single-node
    pool waits up to ``pool_timeout`` for one instead. ``permit()`` gives the cluster client
    that same behaviour: at most ``in_flight`` commands at a time per client, a caller waits
    (bounded) for a slot and gets ``ConnectionError`` when none frees up in time.
    """

    def __init__(self, *, in_flight: int, pool_timeout: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._seeds = dict(self.nodes_manager.startup_nodes)
        self.in_flight = in_flight
        self.pool_timeout = pool_timeout
        self._permits: asyncio.Semaphore | None = None

    @contextlib.asynccontextmanager
    async def permit(self) -> AsyncIterator[None]:
        if self._permits is None:
            self._permits = asyncio.Semaphore(self.in_flight)
        try:
            async with asyncio.timeout(self.pool_timeout):
                await self._permits.acquire()
        except TimeoutError:
            raise redis_exc.ConnectionError("No connection available.") from None
        try:
            yield
        finally:
            self._permits.release()

    async def initialize(self) -> SeenCluster:
        """Read the topology, from the configured nodes too: redis-py drops every node that
        failed a command from its start-up list, and while a primary dies, commands of other
        tasks fail on every node (its error path closes all connections), which can empty
        that list and leave the client unable to reconnect ever again."""
        if self._initialize:
            for name, node in self._seeds.items():
                self.nodes_manager.startup_nodes.setdefault(name, node)
        await super().initialize()
        return self

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        async with self.permit():
            try:
                return await super().execute_command(*args, **kwargs)
            except asyncio.CancelledError:
                self.reclaim()
                raise

    def reclaim(self) -> None:
        """Give abandoned connections back to their nodes.

        redis-py 5's ``ClusterNode`` returns a connection to its free list only after the
        send succeeded: a cancellation during the send (SIGTERM, a lost lease, a timeout)
        leaks it, and after ``max_connections`` leaks the node refuses every command
        (``MaxConnectionsError``). ``CancelSafeWrites`` marks such a connection (it has
        disconnected it too) and this puts it back, disconnected, to be reconnected on use."""
        for node in self.nodes_manager.nodes_cache.values():
            for connection in node._connections:
                if getattr(connection, "abandoned", False) and connection not in node._free:
                    connection.abandoned = False  # type: ignore[attr-defined]
                    node._free.append(connection)

    def pipeline(self, transaction: Any | None = None, shard_hint: Any | None = None) -> Any:
        if shard_hint:
            return super().pipeline(shard_hint=shard_hint)  # redis-py's own refusal
        return SlotTransaction(self) if transaction else SlotPipeline(self)  # type: ignore[abstract]


# -- multi-key operations split per slot ---------------------------------------------------


async def mget_per_slot(client: Redis, keys: Sequence[str]) -> list[bytes | None]:
    """MGET on a cluster: one MGET per slot group, all in one pipelined round trip."""
    groups = slot_groups(keys)
    if len(groups) == 1:
        values: list[bytes | None] = await client.mget(list(keys))
        return values
    async with client.pipeline(transaction=False) as pipe:
        for indexes in groups:
            pipe.execute_command("MGET", *(keys[i] for i in indexes))
        replies: list[list[bytes | None]] = await pipe.execute()
    return merge_in_order(len(keys), zip(groups, replies, strict=True))


async def mset_per_slot(client: Redis, data: Mapping[str, bytes], ttl_ms: int | None) -> None:
    """MSET on a cluster: atomic per slot (one MULTI/EXEC per slot group, run concurrently);
    keys of different slots cannot share a transaction on a cluster."""
    items = list(data.items())
    groups = slot_groups([key for key, _ in items])

    async def one(indexes: list[int]) -> None:
        async with client.pipeline(transaction=True) as pipe:
            if ttl_ms is None:
                pipe.mset({items[i][0]: items[i][1] for i in indexes})
            else:
                for i in indexes:
                    pipe.set(items[i][0], items[i][1], px=ttl_ms)
            await pipe.execute()

    await asyncio.gather(*(one(indexes) for indexes in groups))


async def scan_primaries(client: Redis, pattern: str, count: int) -> AsyncIterator[bytes]:
    """SCAN every primary to the end of its own cursor (a key lives on one primary)."""
    assert isinstance(client, RedisCluster)
    for node in await primaries(client):
        cursor = 0
        while True:
            cursors, batch = await client.scan(
                cursor, match=pattern, count=count, target_nodes=node
            )
            for raw in batch:
                yield raw
            cursor = int(cursors[node.name])
            if cursor == 0:
                break
