"""Who may use the monitor. On a loopback address (the default) anyone on this machine may, as with
every other command; any other address needs ``--token``, sent as ``Authorization: Bearer TOKEN`` or
once in a link (``/?token=TOKEN``) that trades it for a session cookie and drops it from the address.

Either way a form post must come from the monitor's own pages (its Origin, when the browser sends
one, is the Host asked), and on loopback the Host must be a loopback name, so a web page elsewhere
cannot drive the monitor from the operator's browser (cross-site posts, DNS rebinding).
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from framefarm.errors import JobSpecError

COOKIE = "framefarm_session"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_binding(host: str, token: str | None) -> None:
    """JobSpecError (one line) for a non-loopback ``host`` without a token."""
    if not is_loopback(host) and not token:
        raise JobSpecError(f"--host {host} lets other machines in: give --token TOKEN too "
                           "(sent as a bearer header, or once as a ?token= link)")


class Gate:
    """ASGI middleware: the token (when there is one), the origin of posts and the loopback Host."""

    def __init__(self, app: ASGIApp, *, token: str | None, loopback: bool) -> None:
        self.app, self.token, self.loopback = app, token, loopback
        self.sessions: set[str] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        response = self.refusal(request)
        if response is None and self.token is not None:
            response = self.login(request)
        if response is not None:
            await response(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    def refusal(self, request: Request) -> Response | None:
        host = request.headers.get("host", "")
        if self.loopback and not is_loopback(urlsplit(f"//{host}").hostname or ""):  # names and loopback IPs only
            return PlainTextResponse(f"framefarm monitor: host {host!r} is not this machine's loopback address\n",
                                     status_code=400)
        origin = request.headers.get("origin")
        if request.method not in ("GET", "HEAD") and origin is not None and urlsplit(origin).netloc != host:
            return PlainTextResponse("framefarm monitor: a form from another site may not act on jobs\n",
                                     status_code=403)
        return None

    def login(self, request: Request) -> Response | None:
        """None when the request carries the token or a session; else a redirect that sets a session
        (a ?token= link) or a 401."""
        assert self.token is not None
        given = request.query_params.get("token")
        if given is not None and self.same(given):
            session = secrets.token_urlsafe(24)
            self.sessions.add(session)
            clean = request.url.remove_query_params("token")  # not left in the address bar or history
            response = RedirectResponse(clean.path + (f"?{clean.query}" if clean.query else ""), status_code=303)
            response.set_cookie(COOKIE, session, httponly=True, samesite="strict")
            return response
        bearer = request.headers.get("authorization", "")
        if bearer.startswith("Bearer ") and self.same(bearer[len("Bearer "):]):
            return None
        if request.cookies.get(COOKIE) in self.sessions:
            return None
        return PlainTextResponse("framefarm monitor: give the token (Authorization: Bearer TOKEN, or open the "
                                 "?token= link the command printed)\n", status_code=401)

    def same(self, given: str) -> bool:
        assert self.token is not None
        return hmac.compare_digest(given.encode(), self.token.encode())
