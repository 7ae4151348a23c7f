"""Cache warmup: scripts loaded, pool primed, catalog filled from configured sources.

Sources, each reported with its own count; one that fails is logged and the others still run:

- ``warmup.snapshot``: a JSON-lines file, one entry per line::

      {"kind": "dashboard", "user_id": "u1", "value": {...}}
      {"kind": "discover", "item": "trending", "value": [...]}
      {"kind": "search_results", "query": "star wars", "value": [...], "ttl": 120}

  A line that is not valid JSON, or names an unknown kind, is counted as rejected and skipped.
- ``warmup.callables``: dotted paths (``pkg.mod:func`` or ``pkg.mod.func``). Each is called with
  the ``CacheManager``; it returns (or awaits to) an int it wrote itself, or an iterable / async
  iterable of entries shaped like the snapshot lines, which are written the same way.

Entries are written through ``manager.catalog.set`` so they land under the catalog's keys and
current generations, in its stored format, with the kind's TTL unless the entry names one.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import itertools
import json
import logging
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from redis.asyncio import Redis

from cache.catalog import CatalogKind
from cache.cluster import is_cluster
from cache.errors import CacheConnectionError, CacheError, translate_errors
from cache.manager import CacheManager
from cache.scripts import ScriptRunner
from jobs.config import WarmupSettings, split_callable

log = logging.getLogger("seen.jobs.warmup")


class WarmupEntry(BaseModel):
    """One catalog entry of a snapshot or a callable source."""

    model_config = ConfigDict(extra="forbid")

    kind: str
    user_id: str | None = None
    item: str | None = None
    query: str | None = None
    filters: dict[str, Any] | None = None
    value: Any
    ttl: int | None = Field(None, gt=0)


@dataclass
class SourceReport:
    written: int = 0
    rejected: int = 0


KIND_ALIASES = {"search_results": "search"}
"""Snapshot kind names accepted besides ``CatalogKind`` values."""


class EntryWriter:
    """Writes entries through ``manager.catalog`` (its keys, generations and stored format)
    in concurrent batches; counts what it rejects."""

    def __init__(self, manager: CacheManager, batch: int) -> None:
        self.manager = manager
        self.batch = batch
        self.report = SourceReport()
        self._pending: list[WarmupEntry] = []

    async def add(self, raw: Mapping[str, Any] | WarmupEntry) -> None:
        try:
            entry = raw if isinstance(raw, WarmupEntry) else WarmupEntry.model_validate(raw)
            CatalogKind(KIND_ALIASES.get(entry.kind, entry.kind))
        except (ValidationError, ValueError) as exc:
            self.reject(str(exc))
            return
        self._pending.append(entry)
        if len(self._pending) >= self.batch:
            await self.flush()

    def reject(self, reason: str) -> None:
        self.report.rejected += 1
        if self.report.rejected <= 3:
            log.warning("warmup entry rejected: %s", reason.splitlines()[0])

    async def _write(self, entry: WarmupEntry) -> None:
        await self.manager.catalog.set(
            KIND_ALIASES.get(entry.kind, entry.kind),
            entry.value,
            user_id=entry.user_id,
            section_id=entry.item,
            query=entry.query,
            filters=entry.filters,
            ttl=entry.ttl,
        )

    async def flush(self) -> None:
        """Write the pending batch; bad entries are counted, a store failure raises."""
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        outcomes = await asyncio.gather(*(self._write(e) for e in batch), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, CacheConnectionError):
                raise outcome
            if isinstance(outcome, ValueError | CacheError):
                self.reject(str(outcome))
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                self.report.written += 1


def _open(path: Path) -> IO[str]:
    return path.open("r", encoding="utf-8")


def _read_lines(handle: IO[str], count: int) -> list[str]:
    return list(itertools.islice(handle, count))


async def load_snapshot(manager: CacheManager, path: str, batch: int) -> SourceReport:
    """Write every valid line of a JSON-lines snapshot; file reads run off the event loop."""
    writer = EntryWriter(manager, batch)
    handle = await asyncio.to_thread(_open, Path(path))
    try:
        while lines := await asyncio.to_thread(_read_lines, handle, batch):
            for line in lines:
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError as exc:
                    writer.reject(f"not JSON: {exc}")
                    continue
                except RecursionError:
                    writer.reject("JSON nested too deeply")
                    continue
                if not isinstance(record, dict):
                    writer.reject("a line must be a JSON object")
                    continue
                await writer.add(record)
        await writer.flush()
    finally:
        await asyncio.to_thread(handle.close)
    return writer.report


def import_callable(path: str) -> Callable[..., Any]:
    """``pkg.mod:func`` or ``pkg.mod.func`` -> the function; raises ValueError/ImportError."""
    module_name, attr = split_callable(path)
    target = getattr(importlib.import_module(module_name), attr, None)
    if not callable(target):
        raise ValueError(f"{path!r} is not callable")
    return target  # type: ignore[no-any-return]


async def run_callable(manager: CacheManager, path: str, batch: int) -> SourceReport:
    """Call one source; write what it returns unless it returned a count."""
    result = import_callable(path)(manager)
    if inspect.isawaitable(result):
        result = await result
    if result is None:
        return SourceReport()
    if isinstance(result, int) and not isinstance(result, bool):
        return SourceReport(written=result)
    writer = EntryWriter(manager, batch)
    if isinstance(result, AsyncIterable):
        async for record in result:
            await writer.add(record)
    elif isinstance(result, Iterable) and not isinstance(result, str | bytes | Mapping):
        for record in result:
            await writer.add(record)
    else:
        raise TypeError(f"{path} returned {type(result).__name__}; expected int or entries")
    await writer.flush()
    return writer.report


async def prime(
    manager: CacheManager, queue_scripts: ScriptRunner | None, connections: int
) -> dict[str, int]:
    """Load the Lua scripts (on both stores) and open ``connections`` pooled connections."""
    done = dict(await manager.warmup())
    if queue_scripts is not None and not _same_store(manager.client, queue_scripts.client):
        done["queue_scripts"] = await queue_scripts.load_all()
    size = min(connections, manager.config.cache.max_connections)
    with translate_errors(None, operation="PING"):
        await asyncio.gather(*(manager.client.ping() for _ in range(size)))
    done["connections"] = size
    return done


def _same_store(a: Redis, b: Redis) -> bool:
    if is_cluster(a) or is_cluster(b):
        return False  # the queue store is never a cluster (worker.queue_store)
    ka, kb = a.connection_pool.connection_kwargs, b.connection_pool.connection_kwargs
    return all(ka.get(n) == kb.get(n) for n in ("host", "port", "path", "db"))


async def fill_catalog(manager: CacheManager, settings: WarmupSettings) -> dict[str, int]:
    """Run every configured source; a failing source is logged and counted, never raised."""
    counts: dict[str, int] = {"written": 0, "rejected": 0, "failed_sources": 0}
    sources: list[tuple[str, Callable[[], Awaitable[SourceReport]]]] = []
    if settings.snapshot:
        sources.append(
            ("snapshot", partial(load_snapshot, manager, settings.snapshot, settings.batch))
        )
    for dotted in settings.callables:
        sources.append((dotted, partial(run_callable, manager, dotted, settings.batch)))
    for name, run in sources:
        try:
            report = await run()
        except Exception as exc:
            counts["failed_sources"] += 1
            log.warning("warmup source %s failed: %s: %s", name, type(exc).__name__, exc)
            continue
        counts[name] = report.written
        counts["written"] += report.written
        counts["rejected"] += report.rejected
        log.info("warmup source %s: %d written, %d rejected", name, report.written, report.rejected)
    return counts
