"""Who may read and act, and the headers every response carries.

- **Token**: with ``dashboard.token`` set every page, JSON and SSE route needs it, as
  ``Authorization: Bearer <token>`` or the session cookie the login form sets (HttpOnly,
  SameSite=Strict, Secure on HTTPS; its value is an HMAC of the token, never the token).
  Compared with ``hmac.compare_digest``. Without a token the dashboard only runs on loopback
  (``server.check_bind``).
- **Host** (``AllowedHosts``, before anything else): only a ``Host`` that is loopback, an IP
  address or in ``dashboard.allowed_hosts`` is answered; any other gets 421 with a one-line
  reason, never a page, JSON or the CSRF token (DNS rebinding: ``worker.http.hosts``).
- **Actions** (POST only, when allowed): the ``Origin`` must be one of this dashboard's
  (``HostPolicy.origin_refusal``: this request's checked ``Host``, or an allowed name; or
  ``Sec-Fetch-Site`` same-origin) and the form must carry the CSRF token of this process, which
  only a page of this dashboard knows (no CORS headers: other origins cannot read it).
- **Headers**: a strict CSP (no inline script or style, so pages load ``/static`` only),
  ``frame-ancestors 'none'``, nosniff, no referrer, no caching of pages.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from cache.ratelog import RateLimitedLog
from worker.http.hosts import HostPolicy

log = logging.getLogger("seen.dashboard.security")

COOKIE = "seen_dashboard"
TOKEN_BYTES = 32
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
PUBLIC_PATHS = ("/login", "/static/", "/livez", "/metrics")
"""Routes the token check leaves alone (``/metrics`` has its own token)."""

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def new_token() -> str:
    """A fresh dashboard token: 32 random bytes, URL-safe text (43 characters)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def bearer(headers: Headers) -> str | None:
    scheme, _, value = headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


class Guard:
    """The token, the session cookie value derived from it, and this process's CSRF token."""

    def __init__(self, token: str | None) -> None:
        self.token = token
        self.csrf = secrets.token_urlsafe(TOKEN_BYTES)
        self.session = (
            hmac.new(token.encode(), b"seen-dashboard-session", hashlib.sha256).hexdigest()
            if token
            else None
        )

    @property
    def required(self) -> bool:
        return self.token is not None

    def check_token(self, given: str) -> bool:
        return self.token is not None and same(given, self.token)

    def authorized(self, headers: Headers, cookies: dict[str, str]) -> bool | None:
        """True: let in; False: a wrong bearer token; None: no credentials at all."""
        if self.token is None or self.session is None:
            return True
        given = bearer(headers)
        if given is not None:
            return self.check_token(given)
        cookie = cookies.get(COOKIE)
        if cookie is not None and same(cookie, self.session):
            return True
        return None

    def check_csrf(self, given: str | None) -> bool:
        return given is not None and same(given, self.csrf)


def same_origin(request: Request, hosts: HostPolicy) -> str | None:
    """None when the request comes from this dashboard's own pages (or no browser), else why.

    ``Sec-Fetch-Site`` (sent by every current browser) must be ``same-origin`` (or ``none``:
    typed by the user); an ``Origin`` must be one of this dashboard's (``hosts``: this
    request's own, already checked ``Host``, or an allowed name; never the ``Host`` alone,
    which a rebound name controls). Chromium sends ``Origin: null`` on same-origin form posts
    under ``Referrer-Policy: no-referrer``, so ``null`` passes only with ``Sec-Fetch-Site:
    same-origin`` (the ``Host`` check has run before: a rebound page never gets here). A
    request with neither header is not a browser's cross-site form, and still needs the CSRF
    token.
    """
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return f"Sec-Fetch-Site {site!r}"
    origin = request.headers.get("origin")
    if origin is None or (origin == "null" and site == "same-origin"):
        return None
    if origin == "null":
        return f"foreign Origin {origin!r}"
    return hosts.origin_refusal(origin, request.headers.get("host"), request.url.scheme)


def set_session_cookie(response: Response, guard: Guard, secure: bool) -> None:
    assert guard.session is not None
    response.set_cookie(
        COOKIE, guard.session, httponly=True, samesite="strict", secure=secure, path="/"
    )


class SecurityHeaders:
    """ASGI middleware adding ``SECURITY_HEADERS`` to every response, streaming ones too."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def add_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                headers += [(k, v) for k, v in SECURITY_HEADERS if k not in names]
                if b"cache-control" not in names:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, add_headers)


class AllowedHosts:
    """ASGI middleware: a request whose ``Host`` is not one of ours gets 421 and nothing else.

    Runs before the token check and every route, streams and ``/static`` included; refusals
    are logged through a ``RateLimitedLog`` (a script hammering the port cannot flood the log).
    """

    def __init__(self, app: ASGIApp, policy: HostPolicy, log: RateLimitedLog) -> None:
        self.app = app
        self.policy = policy
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        hosts = [v for k, v in scope.get("headers", []) if k.lower() == b"host"]
        header = hosts[0].decode("latin-1") if len(hosts) == 1 else None
        if len(hosts) <= 1 and self.policy.allows_host(header):
            await self.app(scope, receive, send)
            return
        client = scope.get("client") or ("?", 0)
        shown = header if len(hosts) <= 1 else f"{len(hosts)} Host headers"
        self.log.warning(
            "dashboard: refused %s %s for Host %r from %s (not in %s)",
            scope.get("method", "?"),
            scope.get("path", "?"),
            (shown or "")[:100],
            client[0],
            self.policy.setting,
        )
        response = PlainTextResponse(self.policy.refusal(shown), status_code=421)
        await response(scope, receive, send)


class RequireToken:
    """ASGI middleware: every route but ``PUBLIC_PATHS`` needs the token (when one is set).

    Browsers without credentials are sent to ``/login``; other clients get 401, and a wrong
    bearer token 403 (logged, without the token).
    """

    def __init__(self, app: ASGIApp, guard: Guard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not self.guard.required or path.startswith(PUBLIC_PATHS):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        verdict = self.guard.authorized(request.headers, request.cookies)
        if verdict is True:
            await self.app(scope, receive, send)
            return
        response: Response
        if verdict is False:
            client = request.client.host if request.client else "?"
            log.warning("dashboard: wrong bearer token from %s for %s", client, path)
            response = PlainTextResponse("wrong token\n", status_code=403)
        elif scope.get("method") == "GET" and "text/html" in request.headers.get("accept", ""):
            response = RedirectResponse("/login", status_code=303)
        else:
            response = PlainTextResponse(
                "token required\n",
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="seen-dashboard"'},
            )
        await response(scope, receive, send)
