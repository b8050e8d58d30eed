"""Who may use the operator's side of the hub: the JSON API (``/api/v1/``) and the console
(``/console/``), which show phone numbers and texts and can replay quarantined requests.

One token guards both: ``HUB_CONSOLE_TOKEN`` when set, otherwise ``console-token`` in the data
directory, made on the first start (128 random bits, mode 0600, like the URL secrets of
``hub.secrets``). :func:`stored` reads it without ever writing (``hub console-url``).

A request is an operator's when it carries ``Authorization: Bearer <token>``. The middleware
:func:`guard` answers anything else under those prefixes with a 401 (JSON under ``/api/``), and
never looks at the provider callbacks, ``/metrics`` or the health checks.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson
from aiohttp import web

from hub.secrets import new_secret, write_private

TOKEN_FILE = "console-token"  # noqa: S105 - a file name, not a password
GUARDED = ("/api/", "/console/")
"""Path prefixes only an operator may open."""
OPERATOR_TOKEN = web.AppKey("operator_token", str)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


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


def bearer(request: web.Request) -> str | None:
    """The bearer token a request carries, if any."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def is_operator(request: web.Request) -> bool:
    given = bearer(request)
    expected = request.app[OPERATOR_TOKEN]
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith(GUARDED) or is_operator(request):
        return await handler(request)
    if request.path.startswith("/api/"):
        return web.Response(
            status=401,
            body=orjson.dumps({"error": "unauthorized", "detail": "an operator's token is needed"}),
            content_type="application/json",
            headers={"WWW-Authenticate": 'Bearer realm="hub"'},
        )
    return web.Response(
        status=401, text="an operator's token is needed\n", headers={"WWW-Authenticate": "Bearer"}
    )
