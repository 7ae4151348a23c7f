"""Catalog pure logic: kinds, search normalisation, stored form, XFetch, keys, local flights."""

from __future__ import annotations

import asyncio
import math
import random

import pytest
from redis.asyncio import Redis

from cache.catalog import CatalogCache
from cache.catalog._entry import (
    CatalogKind,
    Scope,
    StoredEntry,
    canonical_search,
    decode,
    normalise_query,
    pack,
    unpack,
    xfetch_due,
)
from cache.catalog._singleflight import FillTimeoutError, LocalFlights, poll_backoff
from cache.config import CacheConfig, CatalogSettings, TTLSettings
from cache.errors import InvalidKeyError, SerializationError
from cache.keys import KeyBuilder
from cache.scripts import ScriptRunner, hashtag
from cache.service import CacheService


def test_kinds_scope_and_ttl_setting() -> None:
    per_user = {k for k in CatalogKind if k.scope is Scope.USER}
    assert per_user == {
        CatalogKind.DASHBOARD,
        CatalogKind.WATCH_LATER,
        CatalogKind.CONTINUE_WATCHING,
        CatalogKind.RECOMMENDATIONS,
    }
    assert CatalogKind.SEARCH.ttl_setting == "search_results"
    assert CatalogKind.RECOMMENDATIONS.ttl_setting == "recommendations"
    assert CatalogKind.DISCOVER.ttl_setting == "catalog"
    ttl = TTLSettings()
    assert [getattr(ttl, k.ttl_setting) for k in CatalogKind] == [300, 300, 600, 300, 300, 3600]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  The   MATRIX ", "the matrix"),
        ("the\tmatrix\n", "the matrix"),
        ("STRASSE", "strasse"),
        ("Straße", "strasse"),  # casefold, not lower
        ("Cafe\u0301", "café"),  # NFC: decomposed and composed are one query
        ("\u00a0heat\u2003", "heat"),  # Unicode spaces collapse too
        ("🎬  *:{x}", "🎬 *:{x}"),
        ("", ""),
    ],
)
def test_normalise_query(raw: str, expected: str) -> None:
    assert normalise_query(raw) == expected


def test_canonical_search_filters() -> None:
    a = canonical_search("Heat", {"year": 1995, "genre": ["crime", "drama"]})
    b = canonical_search(" heat ", {"genre": ["crime", "drama"], "year": 1995})
    assert a == b
    assert canonical_search("heat", None) == canonical_search("heat", {})
    assert canonical_search("heat", {"year": 1995}) != canonical_search("heat", {"year": 1996})
    assert canonical_search("heat", {"g": ["a", "b"]}) != canonical_search(
        "heat", {"g": ["b", "a"]}
    )
    # the query cannot impersonate filters: the separator is a NUL
    assert canonical_search('heat {"year":1995}') != canonical_search("heat", {"year": 1995})
    with pytest.raises(SerializationError):
        canonical_search("heat", {"when": object()})
    with pytest.raises(TypeError):
        normalise_query(5)  # type: ignore[arg-type]


def test_pack_unpack_round_trip() -> None:
    stored = pack(b'{"a":1}', 1_700_000_000_123, 42)
    assert unpack(stored) == StoredEntry(b'{"a":1}', 1_700_000_000_123, 42)
    assert decode(unpack(stored), None) == {"a": 1}
    # a payload may itself contain the separator, and may be compressed binary
    binary = b"\x00z\x78\x9c:::\xff"
    assert unpack(pack(binary, 5, 0)).payload == binary
    assert unpack(pack(b"{}", 5, -3)).delta_ms == 0


def test_unpack_bare_and_corrupt() -> None:
    assert unpack(b'{"legacy":true}') == StoredEntry(b'{"legacy":true}')
    with pytest.raises(SerializationError):
        unpack(b"\x00m12")
    with pytest.raises(SerializationError):
        unpack(b"\x00mx:1:{}")


def test_xfetch_certain_cases() -> None:
    rng = random.Random(7)
    assert xfetch_due(1000, 1000, 0, 1.0, rng)  # at expiry
    assert not xfetch_due(0, 1000, 0, 1.0, rng)  # no loader cost, not expired
    assert not xfetch_due(0, None, 500, 1.0, rng)  # no metadata: never early
    assert not xfetch_due(0, 1000, 10_000, 0.0, rng)  # beta 0 disables early refresh


@pytest.mark.parametrize("remaining_in_deltas", [0.25, 1.0, 3.0])
def test_xfetch_probability_matches_formula(remaining_in_deltas: float) -> None:
    """P(refresh) = exp(-remaining / (delta*beta)); a fixed seed makes the count exact."""
    rng = random.Random(1234)
    delta, beta, draws = 100, 1.0, 20_000
    expiry = 1_000_000
    now = expiry - round(remaining_in_deltas * delta)
    due = sum(xfetch_due(now, expiry, delta, beta, rng) for _ in range(draws))
    expected = math.exp(-remaining_in_deltas / beta)
    assert abs(due / draws - expected) < 0.02


def test_xfetch_beta_makes_refresh_earlier() -> None:
    expiry, delta, now = 10_000, 100, 9_700
    counts = []
    for beta in (0.5, 1.0, 3.0):
        rng = random.Random(99)
        counts.append(sum(xfetch_due(now, expiry, delta, beta, rng) for _ in range(5000)))
    assert counts[0] < counts[1] < counts[2]


def test_backoff_grows_caps_and_jitters() -> None:
    backoff = poll_backoff(0.01, 0.1, random.Random(3))
    delays = [backoff.next() for _ in range(20)]
    assert 0.0075 <= delays[0] <= 0.0125
    assert all(d <= 0.1 * 1.25 for d in delays)
    assert min(delays[-5:]) >= 0.1 * 0.75
    assert len({round(d, 6) for d in delays[-5:]}) > 1  # jittered, not lock-step


def test_catalog_keys_share_user_hashtag_and_are_bounded() -> None:
    keys = KeyBuilder()
    gen = keys.catalog_user_generation("u1")
    entry = keys.catalog_user_entry("dashboard", "u1", 7)
    lock = keys.catalog_fill_lock(entry)
    assert hashtag(gen) == hashtag(entry) == hashtag(lock) == "u:u1"
    assert entry.endswith(":g7") and lock == entry + ":fill"
    shared = keys.catalog_shared_entry("discover", "trending", 3)
    assert hashtag(keys.catalog_fill_lock(shared)) == hashtag(shared)
    long_query = canonical_search("x" * 10_240 + "🎬*:{}?[]")
    search = keys.catalog_search_entry(long_query, 2**40)
    assert len(search) < 80 and "*" not in search and "🎬" not in search
    with pytest.raises(InvalidKeyError):
        keys.catalog_fill_lock("seen:session:s1")
    with pytest.raises(InvalidKeyError):
        keys.catalog_user_entry("dashboard", "u*", 0)
    with pytest.raises(InvalidKeyError):
        keys.catalog_user_generation("u}{x")


def test_generation_ttl_must_exceed_catalog_ttls() -> None:
    client = Redis()  # never connects: nothing is sent
    service = CacheService(client)
    config = CacheConfig(catalog=CatalogSettings(generation_ttl=3600))
    with pytest.raises(ValueError, match="generation_ttl"):
        CatalogCache(service, ScriptRunner(client), KeyBuilder(), config)
    CatalogCache(service, ScriptRunner(client), KeyBuilder(), CacheConfig())


async def test_local_flights_share_one_computation() -> None:
    flights = LocalFlights()
    calls = 0
    joined = 0

    async def compute() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.02)
        return "v"

    def on_join() -> None:
        nonlocal joined
        joined += 1

    results = await asyncio.gather(*(flights.run("k", compute, 5, on_join) for _ in range(30)))
    assert results == ["v"] * 30 and calls == 1 and joined == 29
    assert not flights.busy("k")


async def test_local_flights_share_the_error() -> None:
    flights = LocalFlights()
    calls = 0

    async def boom() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        raise RuntimeError("db down")

    results = await asyncio.gather(
        *(flights.run("k", boom, 5) for _ in range(5)), return_exceptions=True
    )
    assert calls == 1
    assert all(isinstance(r, RuntimeError) for r in results)


async def test_local_flights_joiner_takes_over_from_cancelled_leader() -> None:
    flights = LocalFlights()
    started = asyncio.Event()
    calls = 0

    async def slow() -> str:
        nonlocal calls
        calls += 1
        started.set()
        await asyncio.sleep(0.05)
        return f"v{calls}"

    leader = asyncio.create_task(flights.run("k", slow, 5))
    await started.wait()
    joiner = asyncio.create_task(flights.run("k", slow, 5))
    await asyncio.sleep(0.01)
    leader.cancel()
    assert await joiner == "v2"
    assert leader.cancelled()


async def test_local_flights_joiner_wait_is_bounded() -> None:
    flights = LocalFlights()

    async def forever() -> str:
        await asyncio.sleep(10)
        return "late"

    leader = asyncio.create_task(flights.run("k", forever, 5))
    await asyncio.sleep(0)
    with pytest.raises(FillTimeoutError):
        await flights.run("k", forever, 0.05)
    leader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leader
