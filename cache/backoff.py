"""The one backoff: capped exponential delays with jitter.

Every wait that repeats uses it, each with its own numbers: a blocking lock acquire
(``locks.retry_base``/``retry_cap``, equal jitter), the catalog fill's waiters (x1.5 per step,
+-25% spread), the worker's reconnects to an unreachable store (``worker.backoff_base``/
``backoff_cap``, equal jitter), the dashboard's event-stream reader after a failed read (0.1 s
to 2 s, equal jitter) and a progress job's ARQ retry when the store is away (no jitter: the
delay is a function of the try).

Not this one: the per-command retry policy of the connection pool (``cache/client.py``) is
redis-py's own ``EqualJitterBackoff``, because redis-py's ``Retry`` takes only its own
``AbstractBackoff`` objects; its numbers are ``cache.retry_base``/``retry_cap``.
"""

from __future__ import annotations

import enum
import random

MAX_ATTEMPT = 64
"""Steps are counted up to here only: far past any cap, and no float overflow."""


class Jitter(enum.Enum):
    EQUAL = "equal"
    """Half the step fixed, half random: ``step/2 + U(0, step/2)``."""
    SPREAD = "spread"
    """The step times ``U(0.75, 1.25)``."""
    NONE = "none"
    """The step itself."""


class Backoff:
    """Delays ``base``, ``base*factor``, ``base*factor**2`` ... capped at ``cap``, jittered.

    ``next()`` walks the steps (``reset()`` starts again); ``delay(attempt)`` is the delay of
    one step without state. ``rng`` is injectable so tests can fix the draws.
    """

    def __init__(
        self,
        base: float,
        cap: float,
        *,
        factor: float = 2.0,
        jitter: Jitter = Jitter.EQUAL,
        rng: random.Random | None = None,
    ) -> None:
        self.base = base
        self.cap = cap
        self.factor = factor
        self.jitter = jitter
        self.rng = rng or random.Random()
        self.attempt = 0

    def step(self, attempt: int) -> float:
        """The un-jittered delay of step ``attempt`` (0 is the first)."""
        return float(min(self.cap, self.base * self.factor ** min(attempt, MAX_ATTEMPT)))

    def delay(self, attempt: int) -> float:
        """The jittered delay of step ``attempt``."""
        step = self.step(attempt)
        if self.jitter is Jitter.EQUAL:
            return step / 2 + self.rng.uniform(0, step / 2)
        if self.jitter is Jitter.SPREAD:
            return step * self.rng.uniform(0.75, 1.25)
        return step

    def next(self) -> float:
        """The next delay; each call moves one step up (until the cap)."""
        delay = self.delay(self.attempt)
        self.attempt = min(self.attempt + 1, MAX_ATTEMPT)
        return delay

    def reset(self) -> None:
        self.attempt = 0
