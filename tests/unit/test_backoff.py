"""The one backoff (cache/backoff.py) keeps each caller's numbers."""

from __future__ import annotations

import random

from cache.backoff import Backoff, Jitter
from cache.catalog._singleflight import poll_backoff
from jobs.progress import STORE_RETRY


def test_equal_jitter_doubles_to_the_cap_and_resets() -> None:
    backoff = Backoff(0.005, 0.25, rng=random.Random(1))
    delays = [backoff.next() for _ in range(12)]
    steps = [min(0.25, 0.005 * 2**i) for i in range(12)]
    assert all(s / 2 <= d <= s for d, s in zip(delays, steps, strict=True))
    assert len({round(d, 9) for d in delays[-4:]}) > 1  # jittered at the cap
    backoff.reset()
    assert backoff.next() <= 0.005


def test_the_catalog_poll_grows_by_half_with_a_spread() -> None:
    backoff = poll_backoff(0.02, 0.01, random.Random(2))  # a cap below the first step
    assert [backoff.step(i) for i in range(3)] == [0.02, 0.02, 0.02]
    backoff = poll_backoff(0.01, 1.0, random.Random(2))
    assert [round(backoff.step(i), 9) for i in range(3)] == [0.01, 0.015, 0.0225]
    assert all(0.75 * 0.01 <= backoff.delay(0) <= 1.25 * 0.01 for _ in range(50))


def test_a_store_retry_is_a_function_of_the_try() -> None:
    assert STORE_RETRY.jitter is Jitter.NONE
    assert [STORE_RETRY.delay(t - 1) for t in (1, 2, 3, 6, 7, 40)] == [
        min(0.2 * 2 ** (t - 1), 10.0) for t in (1, 2, 3, 6, 7, 40)
    ]
    assert STORE_RETRY.delay(10_000) == 10.0  # no overflow on absurd try counts
