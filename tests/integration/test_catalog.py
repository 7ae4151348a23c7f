"""CatalogCache against a real server: the six views, TTLs, invalidation, search keys,
compression, counters."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel
from redis.asyncio import Redis

from cache.catalog import CatalogCache, CatalogKind
from cache.errors import InvalidKeyError, SerializationError
from cache.manager import CacheManager
from tests.conftest import TestServer, cache_config_for


class Item(BaseModel):
    id: str
    title: str
    year: int
    poster: str = ""


class Row(BaseModel):
    title: str
    items: list[Item]


class Dashboard(BaseModel):
    user_id: str
    rows: list[Row]


def dashboard(user_id: str, rows: int = 2, per_row: int = 3) -> Dashboard:
    return Dashboard(
        user_id=user_id,
        rows=[
            Row(
                title=f"Row {r}",
                items=[
                    Item(id=f"m{r}-{i}", title=f"Movie {r}.{i}", year=1990 + i, poster=f"/p/{i}")
                    for i in range(per_row)
                ],
            )
            for r in range(rows)
        ],
    )


async def put_every_user_kind(catalog: CatalogCache, user_id: str) -> None:
    await catalog.set_dashboard(user_id, dashboard(user_id))
    await catalog.set_watch_later(user_id, ["m1", "m2"])
    await catalog.set_continue_watching(user_id, [{"id": "m3", "position": 61.5}])
    await catalog.set_recommendations(user_id, {"items": ["m9"]})


async def get_every_user_kind(catalog: CatalogCache, user_id: str) -> list[Any]:
    return [
        await catalog.get_dashboard(user_id, Dashboard),
        await catalog.get_watch_later(user_id),
        await catalog.get_continue_watching(user_id),
        await catalog.get_recommendations(user_id),
    ]


async def test_every_view_round_trips(manager: CacheManager) -> None:
    catalog = manager.catalog
    board = dashboard("u1")
    await catalog.set_dashboard("u1", board)
    await catalog.set_discover("trending", [{"id": "m1"}])
    await catalog.set_search_results("heat", {"total": 1, "items": ["m1"]}, filters={"y": 1995})
    await catalog.set_watch_later("u1", ["m1", "m2"])
    await catalog.set_continue_watching("u1", [{"id": "m3", "position": 61.5}])
    await catalog.set_recommendations("u1", {"items": ["m9"]})
    assert await catalog.get_dashboard("u1", Dashboard) == board
    assert await catalog.get_dashboard("u1") == board.model_dump()
    assert await catalog.get_discover("trending") == [{"id": "m1"}]
    assert await catalog.get_search_results("heat", filters={"y": 1995}) == {
        "total": 1,
        "items": ["m1"],
    }
    assert await catalog.get_search_results("heat") is None  # filters are part of the search
    assert await catalog.get_watch_later("u1") == ["m1", "m2"]
    assert await catalog.get_continue_watching("u1") == [{"id": "m3", "position": 61.5}]
    assert await catalog.get_recommendations("u1") == {"items": ["m9"]}


async def test_misses_return_none(manager: CacheManager) -> None:
    catalog = manager.catalog
    assert await catalog.get_dashboard("nobody", Dashboard) is None
    assert await catalog.get_discover("nothing") is None
    assert await catalog.get_search_results("nothing") is None
    assert await catalog.get_watch_later("nobody") is None
    assert await catalog.get_continue_watching("nobody") is None
    assert await catalog.get_recommendations("nobody") is None


async def test_each_kind_gets_its_ttl(manager: CacheManager, raw: Redis) -> None:
    await put_every_user_kind(manager.catalog, "u1")
    await manager.catalog.set_discover("trending", [])
    await manager.catalog.set_search_results("heat", [])
    expected = {
        "dashboard": 300,
        "watch_later": 300,
        "continue_watching": 300,
        "recommendations": 3600,
        "discover": 300,
        "search": 600,
    }
    found = {}
    async for key in raw.scan_iter("seen:catalog:*:g*"):
        found[key.split(":")[2]] = await raw.ttl(key)
    assert found.keys() == expected.keys()
    for kind, ttl in expected.items():
        assert ttl - 2 <= found[kind] <= ttl, kind
    await manager.catalog.set_dashboard("u2", dashboard("u2"), ttl=12)
    key = manager.keys.catalog_user_entry("dashboard", "u2", 0)
    assert 10 <= await raw.ttl(key) <= 12


async def test_invalidate_user_catalog_is_per_user(manager: CacheManager, raw: Redis) -> None:
    catalog = manager.catalog
    await put_every_user_kind(catalog, "u1")
    await put_every_user_kind(catalog, "u2")
    await catalog.set_discover("trending", ["m1"])
    await raw.config_resetstat()
    assert await catalog.invalidate_user_catalog("u1") == 1
    assert await get_every_user_kind(catalog, "u1") == [None, None, None, None]
    assert None not in await get_every_user_kind(catalog, "u2")
    assert await catalog.get_discover("trending") == ["m1"]
    # O(1): one script run, no SCAN/KEYS/DEL of entries
    commands = await raw.info("commandstats")
    assert not any(name in commands for name in ("cmdstat_scan", "cmdstat_keys", "cmdstat_del"))
    # the old entries are left to expire by TTL; new writes go to the new generation
    assert await catalog.generation("u1") > 0
    assert 7100 <= await raw.ttl(manager.keys.catalog_user_generation("u1")) <= 7200
    await catalog.set_watch_later("u1", ["m7"])
    assert await catalog.get_watch_later("u1") == ["m7"]


async def test_manager_invalidate_user_includes_catalog(manager: CacheManager) -> None:
    await put_every_user_kind(manager.catalog, "u1")
    assert (await manager.invalidate_user("u1"))["catalog"] == 1
    assert await get_every_user_kind(manager.catalog, "u1") == [None, None, None, None]


async def test_invalidation_seen_at_once_by_another_process(
    manager: CacheManager, cache_config: Any
) -> None:
    """The generation hint never serves a stale entry: a reader that remembered the old
    generation sees another process's invalidation on its very next read."""
    async with await CacheManager.connect(cache_config) as other:
        await put_every_user_kind(manager.catalog, "u1")
        assert None not in await get_every_user_kind(other.catalog, "u1")  # hint = old gen
        await manager.catalog.invalidate_user_catalog("u1")
        assert await get_every_user_kind(other.catalog, "u1") == [None, None, None, None]
        await other.catalog.set_watch_later("u1", ["new"])
        assert await manager.catalog.get_watch_later("u1") == ["new"]
        assert other.catalog.local_stats()["generation_rereads"] >= 1


async def test_bulk_invalidation_of_shared_views(manager: CacheManager) -> None:
    catalog = manager.catalog
    await catalog.set_discover("trending", ["m1"])
    await catalog.set_search_results("heat", ["m1"])
    await put_every_user_kind(catalog, "u1")
    assert await catalog.invalidate_shared_catalog() == 1
    assert await catalog.get_discover("trending") is None
    assert await catalog.get_search_results("heat") is None
    assert None not in await get_every_user_kind(catalog, "u1")


async def test_lost_generation_never_revives_old_entries(manager: CacheManager, raw: Redis) -> None:
    """A generation counter that disappears (evicted, failed over) restarts above every value
    it held, from the clock: entries of an older generation stay unreachable."""
    catalog = manager.catalog
    await catalog.set_watch_later("u1", ["g0"])
    await catalog.invalidate_user_catalog("u1")
    await catalog.set_watch_later("u1", ["g1"])
    first = await catalog.generation("u1")
    await raw.delete(manager.keys.catalog_user_generation("u1"))
    await catalog.invalidate_user_catalog("u1")
    assert await catalog.generation("u1") >= first
    assert await catalog.get_watch_later("u1") is None
    ahead = 2**52  # a counter ahead of the clock still only moves up by one
    await raw.set(manager.keys.catalog_user_generation("u1"), ahead)
    await catalog.invalidate_user_catalog("u1")
    assert await catalog.generation("u1") == ahead + 1


async def test_search_queries_differing_in_case_and_spacing_share(
    manager: CacheManager, raw: Redis
) -> None:
    catalog = manager.catalog
    await catalog.set_search_results("  The   Matrix ", ["m1"], filters={"a": 1, "b": 2})
    assert await catalog.get_search_results("the matrix", filters={"b": 2, "a": 1}) == ["m1"]
    assert await catalog.get_search_results("THE\tMATRIX\n", filters={"a": 1, "b": 2}) == ["m1"]
    assert await catalog.get_search_results("the matrix reloaded", filters={"a": 1, "b": 2}) is None
    assert len([k async for k in raw.scan_iter("seen:catalog:search:*")]) == 1


@pytest.mark.parametrize(
    "query",
    [
        "x" * 10_240,
        "🎬🍿 film night 🎥",
        "*",
        "seen:catalog:*",
        "a:b:c",
        "{u:u1}",
        "[abc]?\\",
        "\x00\n\r",
        "",
    ],
)
async def test_search_keys_take_any_query(manager: CacheManager, raw: Redis, query: str) -> None:
    catalog = manager.catalog
    await catalog.set_search_results(query, {"q": query})
    assert await catalog.get_search_results(query) == {"q": query}
    assert await catalog.get_search_results(query + " other") is None
    keys = [k async for k in raw.scan_iter("seen:catalog:*")]
    assert len(keys) == 1
    assert len(keys[0]) < 80 and keys[0].isascii()
    # glob characters in the query never reach the key, so deleting by pattern is safe
    assert "*" not in keys[0] and "?" not in keys[0] and "[" not in keys[0]


@pytest.mark.parametrize("bad", ["", "*", "u 1", "a:b", "{x}", "x" * 200])
async def test_bad_ids_are_rejected(manager: CacheManager, bad: str) -> None:
    with pytest.raises(InvalidKeyError):
        await manager.catalog.get_dashboard(bad)
    with pytest.raises(InvalidKeyError):
        await manager.catalog.set_discover(bad, [])
    with pytest.raises(InvalidKeyError):
        await manager.catalog.invalidate_user_catalog(bad)


async def test_wrong_identity_or_ttl_is_rejected(manager: CacheManager, raw: Redis) -> None:
    catalog = manager.catalog
    with pytest.raises(ValueError, match="takes"):
        await catalog.get(CatalogKind.DASHBOARD, section_id="x")
    with pytest.raises(ValueError, match="takes"):
        await catalog.get("discover", section_id="x", user_id="u1")
    with pytest.raises(ValueError, match="takes"):
        await catalog.get("search")
    with pytest.raises(ValueError, match="nope"):
        await catalog.get("nope", user_id="u1")
    with pytest.raises(ValueError, match="ttl"):
        await catalog.set_dashboard("u1", {}, ttl=0)
    with pytest.raises(ValueError, match="generation_ttl"):
        await catalog.set_dashboard("u1", {}, ttl=7201)
    with pytest.raises(SerializationError):
        await catalog.set_dashboard("u1", {"x": object()})
    assert await raw.dbsize() == 0


async def test_unreadable_entries_are_misses(manager: CacheManager, raw: Redis) -> None:
    catalog = manager.catalog
    key = manager.keys.catalog_user_entry("dashboard", "u1", 0)
    await raw.set(key, "{not json")
    assert await catalog.get_dashboard("u1") is None
    await catalog.set_dashboard("u1", {"user_id": 5})  # not a Dashboard
    assert await catalog.get_dashboard("u1", Dashboard) is None
    assert await catalog.get_dashboard("u1") == {"user_id": 5}
    assert catalog.local_stats()["decode_errors"] == 2


async def test_values_without_header_are_read(manager: CacheManager, raw: Redis) -> None:
    """Entries written by plain set_json (or another service) are read, compressed or not."""
    big = dashboard("u1", rows=10, per_row=20)
    await manager.service.set_json(manager.keys.catalog_user_entry("dashboard", "u1", 0), big)
    await raw.set(manager.keys.catalog_user_entry("watch_later", "u1", 0), '["m1"]')
    assert await manager.catalog.get_dashboard("u1", Dashboard) == big
    assert await manager.catalog.get_watch_later("u1") == ["m1"]


async def test_large_dashboard_is_compressed(manager: CacheManager, raw: Redis) -> None:
    board = dashboard("u1", rows=12, per_row=25)
    plain = len(board.model_dump_json())
    assert plain > manager.config.cache.compress_threshold
    await manager.catalog.set_dashboard("u1", board)
    key = manager.keys.catalog_user_entry("dashboard", "u1", 0)
    assert await raw.strlen(key) < plain / 3
    assert await manager.catalog.get_dashboard("u1", Dashboard) == board
    small = dashboard("u2", rows=1, per_row=1)
    await manager.catalog.set_dashboard("u2", small)
    stored = await raw.get(manager.keys.catalog_user_entry("dashboard", "u2", 0))
    assert stored is not None and small.model_dump_json() in stored  # small stays plain


async def test_compression_threshold_from_settings(server: TestServer, raw: Redis) -> None:
    board = dashboard("u1", rows=12, per_row=25)
    cfg = cache_config_for(server.url, compress_threshold=0)
    async with await CacheManager.connect(cfg) as mgr:
        await mgr.catalog.set_dashboard("u1", board)
        key = mgr.keys.catalog_user_entry("dashboard", "u1", 0)
        assert await raw.strlen(key) > len(board.model_dump_json())
        assert await mgr.catalog.get_dashboard("u1", Dashboard) == board


async def test_counters_in_manager_stats(manager: CacheManager, cache_config: Any) -> None:
    catalog = manager.catalog
    await catalog.set_watch_later("u1", ["m1"])
    await catalog.get_watch_later("u1")
    await catalog.get_watch_later("u1")
    await catalog.get_watch_later("u2")
    await catalog.invalidate_user_catalog("u1")
    await catalog.invalidate_shared_catalog()
    extra = (await manager.stats()).extra
    assert extra["catalog.hits"] == 2
    assert extra["catalog.misses"] == 1
    assert extra["catalog.invalidations"] == 1
    assert extra["catalog.bulk_invalidations"] == 1
    async with await CacheManager.connect(cache_config) as other:
        await other.catalog.get_watch_later("u3")
        figures = await other.catalog.stats()
        assert figures["misses"] == 1 and figures["hits"] == 0
        assert figures["fleet_misses"] == 2 and figures["fleet_hits"] == 2
