"""Who may use the operator's side of the hub: the JSON API (``/api/v1/``) and the console
(``/console/``), which show phone numbers and texts and can replay quarantined requests.

One token guards both: ``HUB_CONSOLE_TOKEN`` when set, otherwise ``console-token`` in the data
directory, made on the first start (128 random bits, mode 0600, like the URL secrets of
``hub.secrets``). :func:`stored` reads it without ever writing (``hub console-url``).

A request is an operator's when it carries either

- ``Authorization: Bearer <token>`` (scripts, the API's clients), or
- the console's session cookie, set by the login form (``/console/login``, ``hub.console.login``)
  or by the Jupyter-style address ``/console/?token=<token>``, which logs in and redirects to the
  same address without the token, so that it stays in no history. The cookie is
  ``<issued>.<nonce>.<mac>``: an HMAC of its issue time and a random nonce, keyed by the token
  (nothing kept on the server; changing the token ends every session), valid
  :data:`SESSION_SECONDS`; ``HttpOnly``, ``SameSite=Strict``, ``Secure`` over https.

Cross-site requests: a request that changes state (POST, PUT, PATCH, DELETE) and is an
operator's by its cookie must carry the session's CSRF token (form field ``csrf`` or header
``X-CSRF-Token``: an HMAC of the session, keyed by the token, so a per-session token that needs
no storage either), and its ``Origin`` (else ``Referer``), when sent, must be the hub's own.
A bearer token is never sent by a browser on its own: those requests are exempt.

The middleware :func:`guard` answers anything else under those prefixes: a 401 (JSON under
``/api/``), a redirect to the login form for a console page, a 403 for a missing CSRF token or
a foreign origin. It never looks at the provider callbacks, ``/metrics`` or the health checks.
It also puts the console's security headers on its answers (:data:`CONSOLE_HEADERS`: a
Content-Security-Policy allowing nothing but the hub's own files, no inline script, no
framing).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import orjson
from aiohttp import web

from hub.secrets import new_secret, write_private

TOKEN_FILE = "console-token"  # noqa: S105 - a file name, not a password
GUARDED = ("/api/", "/console/")
"""Path prefixes only an operator may open."""
LOGIN = "/console/login"
STATIC = "/console/static/"
PUBLIC = (LOGIN, STATIC)
"""What the console shows anyone: the login form and the static files (no data in them)."""
OPERATOR_TOKEN = web.AppKey("operator_token", str)

COOKIE = "hub_console"
SESSION_SECONDS = 7 * 86_400
"""How long a login lasts (the cookie's Max-Age and the age its MAC is accepted for)."""
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; object-src 'none'; "
    "frame-ancestors 'none'"
)
COMMON_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}
"""On every answer of the operator's side. ``same-origin``, not ``no-referrer``: with that, a
browser sends ``Origin: null`` on a form's POST, which the origin check must refuse."""
CONSOLE_HEADERS = {
    **COMMON_HEADERS,
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
}
NOT_STORED = {"Cache-Control": "no-store"}
"""On the console's pages (numbers and texts): kept in no cache. Static files may be."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Operator:
    """How a request is an operator's: ``bearer`` or ``cookie`` (with the session's value)."""

    via: str
    session: str | None = None


OPERATOR = web.RequestKey("operator", Operator)


def resolve(configured: str | None, data_dir: Path) -> str:
    """The token: the configured one, else the data directory's (made and kept if missing)."""
    if configured:
        return configured
    token = stored(data_dir)
    if token is None:
        token = new_secret()
        write_private(data_dir / TOKEN_FILE, token.encode() + b"\n")
    return token


def stored(data_dir: Path) -> str | None:
    """The data directory's token, read without writing (none yet: None)."""
    try:
        return (data_dir / TOKEN_FILE).read_text().strip() or None
    except FileNotFoundError:
        return None


def console_url(base: str, token: str) -> str:
    """The Jupyter-style address that opens the console logged in."""
    return f"{base.rstrip('/')}/console/?{urlencode({'token': token})}"


def bearer(request: web.Request) -> str | None:
    """The bearer token a request carries, if any."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def is_token(request: web.Request, given: str | None) -> bool:
    """Whether ``given`` is the operator's token (in constant time)."""
    expected = request.app[OPERATOR_TOKEN]
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def is_operator(request: web.Request) -> bool:
    return _operator(request) is not None


def _mac(token: str, purpose: str, *parts: str) -> str:
    message = "\n".join((purpose, *parts)).encode()
    digest = hmac.new(token.encode(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def new_session(token: str, now: float) -> str:
    issued, nonce = str(int(now)), secrets.token_urlsafe(16)
    return f"{issued}.{nonce}.{_mac(token, 'session', issued, nonce)}"


def valid_session(token: str, value: str, now: float) -> bool:
    """Whether a cookie's value is a session this token made, not older than allowed."""
    issued, _, rest = value.partition(".")
    nonce, _, mac = rest.partition(".")
    if not (issued.isdigit() and nonce and mac):
        return False
    if not hmac.compare_digest(mac.encode(), _mac(token, "session", issued, nonce).encode()):
        return False
    return now - SESSION_SECONDS <= int(issued) <= now + 60


def csrf_token(request: web.Request) -> str:
    """The CSRF token a console page puts in its forms ("" for a bearer's request: exempt)."""
    who = request.get(OPERATOR)
    if who is None or who.session is None:
        return ""
    return _mac(request.app[OPERATOR_TOKEN], "csrf", who.session)


def https(request: web.Request) -> bool:
    """The browser speaks https to us, directly or through a proxy that says so."""
    forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return request.secure or forwarded == "https"


def origin_of(request: web.Request) -> str:
    """``scheme://host[:port]`` of the hub, as the browser sees it."""
    return f"{'https' if https(request) else 'http'}://{request.host}"


def same_origin(request: web.Request) -> bool:
    """The request's ``Origin`` (else ``Referer``) is the hub's own, or neither was sent."""
    claimed = request.headers.get("Origin") or request.headers.get("Referer")
    if claimed is None:
        return True
    url = urlsplit(claimed)
    return f"{url.scheme}://{url.netloc}".lower() == origin_of(request).lower()


def log_in(request: web.Request, response: web.StreamResponse) -> None:
    """Gives the browser a new session."""
    response.set_cookie(
        COOKIE,
        new_session(request.app[OPERATOR_TOKEN], time.time()),
        max_age=SESSION_SECONDS,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=https(request),
    )


def log_out(request: web.Request, response: web.StreamResponse) -> None:
    response.del_cookie(COOKIE, path="/", samesite="Strict", secure=https(request))


def redirect(location: str) -> web.Response:
    """303 See Other: after a form's POST, or to the login form, the browser GETs ``location``."""
    return web.Response(status=303, headers={"Location": location})


def login_address(next_path: str, **extra: str) -> str:
    return f"{LOGIN}?{urlencode({'next': next_path, **extra})}"


def _operator(request: web.Request) -> Operator | None:
    token = request.app[OPERATOR_TOKEN]
    if is_token(request, bearer(request)):
        return Operator("bearer")
    session = request.cookies.get(COOKIE)
    if session and valid_session(token, session, time.time()):
        return Operator("cookie", session)
    return None


def _refusal(request: web.Request, status: int, error: str, detail: str) -> web.Response:
    if request.path.startswith("/api/"):
        response = web.Response(
            status=status,
            body=orjson.dumps({"error": error, "detail": detail}),
            content_type="application/json",
        )
    else:
        response = web.Response(status=status, text=f"{detail}\n")
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="hub"'
    return response


async def _cross_site(request: web.Request, who: Operator) -> str | None:
    """Why a request may have been forged by another site (None: it cannot have been): one
    that changes state with the cookie needs the hub's origin and the session's CSRF token."""
    if who.via != "cookie" or request.method not in UNSAFE:
        return None
    if not same_origin(request):
        return "this request comes from another site (its Origin is not the hub's)"
    expected = _mac(request.app[OPERATOR_TOKEN], "csrf", who.session or "")
    if not hmac.compare_digest((await _csrf_given(request)).encode(), expected.encode()):
        return "this request carries no valid CSRF token (reload the page, and try again)"
    return None


async def _csrf_given(request: web.Request) -> str:
    header = request.headers.get(CSRF_HEADER)
    if header is not None:
        return header
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        value = (await request.post()).get(CSRF_FIELD)
        return value if isinstance(value, str) else ""
    return ""


def _token_in_address(request: web.Request) -> web.StreamResponse | None:
    """``/console/...?token=``: logged in and sent to the address without the token (a wrong
    token: to the login form)."""
    if request.method != "GET" or "token" not in request.query:
        return None
    rest = str(request.rel_url.without_query_params("token"))
    if not is_token(request, request.query["token"]):
        return redirect(login_address(rest, failed="1"))
    response = redirect(rest)
    log_in(request, response)
    return response


def _secured(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
    if response.prepared:  # a stream that has begun: its headers are gone
        return response
    console = request.path.startswith("/console/")
    response.headers.update(CONSOLE_HEADERS if console else COMMON_HEADERS)
    if console and not request.path.startswith(STATIC):
        response.headers.update(NOT_STORED)
    return response


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith(GUARDED):
        return await handler(request)
    try:
        return _secured(request, await _checked(request, handler))
    except web.HTTPException as exc:
        _secured(request, exc)
        raise


async def _checked(request: web.Request, handler: Handler) -> web.StreamResponse:
    console = request.path.startswith("/console/")
    if console:
        by_address = _token_in_address(request)
        if by_address is not None:
            return by_address
        if request.path.startswith(PUBLIC):
            return await handler(request)
    who = _operator(request)
    if who is None:
        if console and request.method in ("GET", "HEAD"):
            return redirect(login_address(str(request.rel_url)))
        return _refusal(request, 401, "unauthorized", "an operator's token is needed")
    forged = await _cross_site(request, who)
    if forged is not None:
        return _refusal(request, 403, "csrf", forged)
    request[OPERATOR] = who
    return await handler(request)
