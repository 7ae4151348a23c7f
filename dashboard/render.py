"""Pages rendered on the server: one Jinja2 environment (autoescaped), its filters, and the
responses every page shares (the notice of the last action, the unreadable-rows header).

Everything a page shows is escaped by the template engine: stored text (job arguments, dead
letters, reasons, lock holders, worker ids) can hold HTML, scripts, right-to-left overrides or
control characters and is shown as text. ``shown`` cuts long text to what a page shows, with
the length said, and ``printable`` makes control characters visible (``\\x1b`` as ``␛``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from dashboard.context import context
from dashboard.notices import COOKIE
from jobs.outcome import OUTCOMES

HERE = Path(__file__).resolve().parent
UNREADABLE_HEADER = "X-Seen-Unreadable"
"""Rows a page or JSON twin skipped because they could not be read (0 when none)."""
_CONTROL = {c: 0x2400 + c for c in range(0x20)} | {0x7F: 0x2421}


def utc(fmt: str, ms: int | None) -> str:
    """A stored time (ms) as UTC text; "?" for one no calendar holds (a bad row's)."""
    if not ms:
        return "-"
    try:
        return time.strftime(fmt, time.gmtime(ms / 1000))
    except (OverflowError, OSError, ValueError):
        return "?"


def size(count: int | None) -> str:
    if count is None:
        return "-"
    value = float(count)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return "-"  # pragma: no cover


def ago(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.1f} s"


def printable(text: object) -> str:
    """Control characters shown as their Unicode pictures (never sent to the terminal or DOM
    as themselves); newlines and tabs kept."""
    value = "" if text is None else str(text)
    return value.translate({k: v for k, v in _CONTROL.items() if k not in (9, 10)})


def shown(text: object, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was."""
    value = printable(text)
    if len(value) <= limit:
        return value
    return f"{value[:limit]}… ({len(value):,} characters)"


def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )
    env.globals["outcomes"] = OUTCOMES
    env.filters["bytes"] = size
    env.filters["ago"] = ago
    env.filters["pct"] = lambda v: "-" if v is None else f"{100 * v:.1f} %"
    env.filters["rate"] = lambda v: "-" if v is None else f"{v:g}"
    env.filters["hm"] = lambda ms: utc("%H:%M", ms)
    env.filters["when"] = lambda ms: utc("%Y-%m-%d %H:%M:%S", ms)
    env.filters["printable"] = printable
    env.filters["shown"] = shown
    env.filters["secs"] = lambda ms: "-" if ms is None else f"{ms / 1000:.1f} s"
    env.filters["tojson_attr"] = lambda value: json.dumps(value, separators=(",", ":"))
    return env


ENV = environment()


def render(
    request: Request,
    template: str,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **values: Any,
) -> HTMLResponse:
    """``template`` with the values every page has (CSRF token, actions on, login, the path,
    the notice of the last action, if any, shown once)."""
    ctx = context(request)
    notice = ctx.notices.take(request)
    html = ENV.get_template(template).render(
        csrf=ctx.guard.csrf,
        actions=ctx.actions,
        login=ctx.guard.required,
        path=request.url.path,
        notice=notice,
        **values,
    )
    response = HTMLResponse(html, status_code=status, headers=headers)
    if COOKIE in request.cookies:
        response.delete_cookie(COOKIE, path="/")
    return response
