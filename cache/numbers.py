"""Finite, bounded numbers: the annotated types every settings model uses, and the check every
caller-supplied duration goes through.

``inf``, ``nan`` and absurdly large values are refused where they enter (a setting, an
argument), because deep inside they overflow (``int(inf * 1000)``), never expire, or turn a
deadline into ``nan`` that no clock ever reaches, so a wait would never end.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Annotated

from pydantic import Field

from cache.errors import InvalidArgumentError

MAX_SECONDS = 8 * 365 * 24 * 3600
"""Longest duration anywhere (Dragonfly caps expiry deadlines at about 8.5 years)."""

MAX_COUNT = 2**31 - 1
"""Largest count setting: every server command and C integer takes it."""

Seconds = Annotated[float, Field(gt=0, le=MAX_SECONDS, allow_inf_nan=False)]
"""A positive, finite duration setting in seconds."""
SecondsOrZero = Annotated[float, Field(ge=0, le=MAX_SECONDS, allow_inf_nan=False)]
"""Like ``Seconds``; 0 is allowed (it means "never" or "do not wait", as documented)."""
WholeSeconds = Annotated[int, Field(gt=0, le=MAX_SECONDS)]
"""A positive duration setting in whole seconds (TTLs)."""
WholeSecondsOrZero = Annotated[int, Field(ge=0, le=MAX_SECONDS)]
Count = Annotated[int, Field(ge=1, le=MAX_COUNT)]
"""A positive count setting (sizes, batches, tries)."""
CountOrZero = Annotated[int, Field(ge=0, le=MAX_COUNT)]


def seconds_arg(
    value: object, name: str, *, allow_zero: bool = False, maximum: float = MAX_SECONDS
) -> float:
    """``value`` (seconds, or a timedelta) as a float; ``InvalidArgumentError`` naming ``name``
    unless it is a finite number in ``(0, maximum]`` (``[0, maximum]`` with ``allow_zero``)."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgumentError(
            f"{name} must be seconds (int/float) or a timedelta, got {value!r}"
        )
    else:
        try:
            seconds = float(value)
        except OverflowError:
            seconds = math.inf
    if not math.isfinite(seconds):
        raise InvalidArgumentError(f"{name} must be a finite number of seconds, got {value!r}")
    if seconds < 0 or (seconds == 0 and not allow_zero):
        least = "zero or positive" if allow_zero else "positive"
        raise InvalidArgumentError(f"{name} must be {least}, got {value!r}")
    if seconds > maximum:
        raise InvalidArgumentError(f"{name} must be at most {maximum:g} s, got {value!r}")
    return seconds


def count_arg(value: object, name: str, *, minimum: int = 1, maximum: int = MAX_COUNT) -> int:
    """``value`` as an int in ``[minimum, maximum]``; ``InvalidArgumentError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentError(f"{name} must be an int, got {value!r}")
    if not minimum <= value <= maximum:
        raise InvalidArgumentError(f"{name} must be in [{minimum}, {maximum}], got {value!r}")
    return value
