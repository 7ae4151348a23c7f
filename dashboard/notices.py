"""What an action did, shown on the page the browser lands on after it (POST, redirect, GET).

An action's answer (``Notice``: done or refused, and the words) is kept in this process for a
minute under a random id; the redirect sets that id in a short-lived cookie (HttpOnly,
SameSite=Strict), and the next page this browser loads shows the notice once and clears the
cookie. Bounded: at most ``MAX_NOTICES`` are kept (the oldest go first), each expires after
``TTL_S``. The text is the action's own words, rendered escaped; nothing the client sends ends
up in a notice but the id of the job it named.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

COOKIE = "seen_notice"
MAX_NOTICES = 512
TTL_S = 60.0


@dataclass(frozen=True)
class Notice:
    ok: bool
    """Done (or nothing needed doing) versus refused."""
    lines: tuple[str, ...]


class Notices:
    """The notices of one dashboard process (module docstring)."""

    def __init__(self) -> None:
        self._kept: OrderedDict[str, tuple[float, Notice]] = OrderedDict()

    def put(self, response: Response, notice: Notice, *, secure: bool) -> None:
        """Keep ``notice`` and point this browser at it (cookie on ``response``)."""
        now = time.monotonic()
        while self._kept and (
            len(self._kept) >= MAX_NOTICES or next(iter(self._kept.values()))[0] < now
        ):
            self._kept.popitem(last=False)
        ident = secrets.token_urlsafe(16)
        self._kept[ident] = (now + TTL_S, notice)
        response.set_cookie(
            COOKIE, ident, max_age=int(TTL_S), httponly=True, samesite="strict", secure=secure
        )

    def _oldest_expiry(self) -> float:
        return next(iter(self._kept.values()))[0]

    def take(self, request: Request) -> Notice | None:
        """The notice this browser was pointed at (once), if it is still kept."""
        ident = request.cookies.get(COOKIE)
        if not ident:
            return None
        kept = self._kept.pop(ident, None)
        if kept is None or kept[0] < time.monotonic():
            return None
        return kept[1]
