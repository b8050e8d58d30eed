"""``GET /api/v1/urls``: each provider's callback URLs, with the secret the running hub accepts,
as ``hub urls`` prints them (``hub.endpoints``). The API is an operator's, behind the token: the
secrets are what they are to paste into each provider's account."""

from __future__ import annotations

import re

import msgspec
from aiohttp import web

from hub.api.spec import Api, Param, Problem, json_response, problem
from hub.endpoints import callback_urls
from hub.handlers import RUNTIME
from hub.settings import Settings

BASE_PATTERN = r"^https?://(\[[0-9A-Fa-f:.]+\]|[^\s/?#\[\]@]+)"
"""A base the API takes: http(s) and a host (what follows is the base's path, as given). The
document says this pattern and the handler checks it, nothing more: what the document allows
is taken."""


class CallbackUrl(msgspec.Struct, frozen=True):
    provider: str
    callback: str
    """The callback style (delivery, reply, webhook...)."""
    methods: list[str]
    """The HTTP methods the provider calls it with."""
    url: str
    """To paste into the provider's account: the secret is in it."""
    summary: str
    """What the provider sends there."""


class CallbackUrls(msgspec.Struct, frozen=True):
    base: str
    urls: list[CallbackUrl]


def register(api: Api, settings: Settings) -> None:
    @api.operation(
        "GET",
        "/urls",
        "Each provider's callback URLs, with its current secret",
        params=[
            Param(
                "base",
                "query",
                "The hub's public URL, e.g. https://hooks.example.com (default: the address"
                " this request came to, which a reverse proxy may not be)",
                {"type": "string", "pattern": BASE_PATTERN},
            )
        ],
        responses={200: ("The URLs", CallbackUrls), 400: ("Not an http(s) URL", Problem)},
    )
    async def get_urls(request: web.Request) -> web.Response:
        base = request.query.get("base") or f"{request.scheme}://{request.host}"
        if not re.match(BASE_PATTERN, base):
            return problem(400, "bad_parameter", "base: expected http(s)://host[:port][/path]")
        urls = [
            CallbackUrl(
                provider=u.endpoint.provider.value,
                callback=u.endpoint.callback.name,
                methods=list(u.methods),
                url=u.url,
                summary=u.endpoint.callback.summary,
            )
            for u in callback_urls(base, request.app[RUNTIME].secrets)
        ]
        return json_response(CallbackUrls(base=base.rstrip("/"), urls=urls))
