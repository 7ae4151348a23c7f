"""The table of pages: each is a path, its JSON twin, its template, its reader and its label.

``Page.endpoint`` is the one endpoint every page shares: it runs the page's reader (``readers``)
under the page's ``Unreadable`` and answers with the template or, under ``/api/``, the data as
JSON. Rows a reader skipped are counted (a notice on the page, ``unreadable`` in a JSON object,
the ``X-Seen-Unreadable`` header on both); a failed read is worded by its kind (503 store
unavailable, 502 store error, ...); bad input (an id, a cursor, a filter) is a 400 saying why.
A reader's ``Missing`` is a 404 that still renders the page (a job the store no longer has:
its dead letters may say what became of it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cache.errors import CacheError, InvalidKeyError
from cache.unreadable import Unreadable
from dashboard import readers
from dashboard.context import state
from dashboard.failures import describe_failure
from dashboard.render import UNREADABLE_HEADER, render
from worker.fleet import FleetTimeout

Reader = Callable[[Request, Unreadable], Awaitable[Any]]


@dataclass(frozen=True)
class Page:
    name: str
    """Its template (``<name>.html``) and the ``data-page`` the script keys on."""
    path: str
    api: str | None
    read: Reader
    label: str | None = None
    """Its link in the navigation bar; None: reached from other pages only."""
    page_read: Reader | None = None
    """What the HTML page reads when that is not the JSON twin's (the live page: its rows
    come over SSE, the page itself only needs its filters)."""

    async def endpoint(self, request: Request) -> Response:
        skipped = state(request).fleet.unreadable()
        api = request.url.path.startswith("/api/")
        read = self.page_read if self.page_read is not None and not api else self.read
        try:
            data = await read(request, skipped)
        except InvalidKeyError as exc:  # an id in the request that breaks the id rule
            return failure(request, api, 400, f"bad request: {exc}")
        except (CacheError, FleetTimeout) as exc:
            status, text = describe_failure(exc)
            return failure(request, api, status, text)
        except ValueError as exc:
            return failure(request, api, 400, f"bad request: {exc}")
        headers = {UNREADABLE_HEADER: str(skipped.total)}
        status = 404 if isinstance(data, dict) and data.get("state") == "not_found" else 200
        if api:
            if isinstance(data, dict):
                data = {**data, "unreadable": skipped.summary()}
            return JSONResponse(data, status, headers=headers)
        return render(
            request,
            f"{self.name}.html",
            status,
            headers=headers,
            data=data,
            unreadable=skipped.describe(),
            pages=NAV,
        )


def failure(request: Request, api: bool, status: int, text: str) -> Response:
    if api:
        return JSONResponse({"error": text}, status)
    return render(request, "error.html", status, error=text, pages=NAV)


PAGES = [
    Page("overview", "/", "/api/overview", readers.overview, "Overview"),
    Page("jobs", "/jobs", "/api/jobs", readers.jobs, "Jobs"),
    Page("job", "/jobs/{job_id:path}", "/api/jobs/{job_id:path}", readers.job),
    Page(
        "downloads",
        "/downloads",
        "/api/downloads",
        readers.downloads,
        "Live downloads",
        readers.download_filters,
    ),
    Page("schedules", "/schedules", "/api/schedules", readers.schedules, "Schedules"),
    Page("deadletters", "/dead-letters", "/api/dead-letters", readers.dead_letters, "Dead letters"),
    Page("locks", "/locks", "/api/locks", readers.locks, "Locks & leases"),
]
NAV = [(p.path, p.label) for p in PAGES if p.label is not None]
"""The navigation bar: (path, label) of every page that has a label."""
