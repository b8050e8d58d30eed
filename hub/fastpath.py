"""The callbacks' way in past aiohttp's router and middlewares: a split and one lookup.

aiohttp hands every request to the app, which resolves its route among every resource (the
callbacks, the console's pages, the API's operations) and runs it through the app's middlewares
(the HTTP metrics, the operator's guard), one coroutine each. A callback's URL is
``/callbacks/<provider>/<secret>/<callback>``, so :class:`Front` finds its handler by splitting
the path and one dictionary lookup, counts the HTTP metrics with the middleware's own functions
(``hub.handlers.raised_status``, ``count_http``: the same ``route`` label, method, status,
duration), and calls the same handler the route calls
(``hub.handlers.direct_handler``).

Anything it does not recognize exactly goes to the app, as before: another path, a
percent-escape or an empty segment in the path (which the router decodes or refuses), an
``Expect`` header (the app's continue handling), an unknown provider, callback or method (the
app's 404 and 405), ``HEAD`` (the app's probe). The same request therefore gets the same answer
either way (``tests/test_fastpath.py`` sends each through both).

It is installed by ``hub.server`` for ``hub serve`` (``front=``); the aiohttp test client,
which makes its own server, goes through the router: both ways are tested.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import hdrs, web

from hub.endpoints import endpoints
from hub.handlers import RUNTIME, DirectHandler, count_http, direct_handler, raised_status

RequestHandler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]

PREFIX = "/callbacks/"
_NOT_A_SECRET = frozenset({"", ".", ".."})
"""Segments the router would not take as a secret (``.`` and ``..`` are dot segments)."""


class Front:
    """The server's request handler: callbacks straight to their handler, the rest to ``app``."""

    def __init__(self, app: web.Application, fallback: RequestHandler) -> None:
        self._app = app
        self._fallback = fallback
        self._metrics = app[RUNTIME].metrics
        self._table: dict[tuple[str, str, str], tuple[str, DirectHandler]] = {}
        for endpoint in endpoints():
            handler = direct_handler(endpoint.module, endpoint.callback)
            for method in endpoint.callback.methods:
                key = (endpoint.provider.value, endpoint.callback.name, method)
                self._table[key] = (endpoint.route, handler)

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        found = self._callback(request)
        if found is None:
            return await self._fallback(request)
        # counted as hub.handlers.observe_http counts a routed request, in this frame: a
        # coroutine of its own would cost more than the counting
        route, handler, secret = found
        assert isinstance(request, web.Request)  # the app's request factory's
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(self._app, request, secret)
            status = response.status
            return response
        except BaseException as exc:
            status = raised_status(exc)
            raise
        finally:
            count_http(self._metrics, route, request.method, status, started)

    def _callback(self, request: web.BaseRequest) -> tuple[str, DirectHandler, str] | None:
        """A callback's route, handler and secret, if the request is one this takes."""
        target = request.raw_path
        if not target.startswith(PREFIX):
            return None
        path = target.partition("?")[0]
        parts = path.split("/")
        if len(parts) != 5 or parts[3] in _NOT_A_SECRET or "%" in path:
            return None
        found = self._table.get((parts[2], parts[4], request.method))
        if found is None or hdrs.EXPECT in request.headers:
            return None
        return (*found, parts[3])
