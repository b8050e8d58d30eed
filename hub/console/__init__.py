"""The operator's console at ``/console/``: server-rendered HTML pages (Jinja2 templates), a
style sheet and one small plain script, served by the hub itself from ``static/`` (no CDN, no
build step). Behind ``hub.operator``'s token like the API: the login form, the session cookie,
CSRF checks and the security headers are there.

- ``render``: the layout, its navigation, the templates;
- ``login``: the login form, the logout;
- ``overview_page``: events per minute, backlog, quarantine, broker, shared index;
- ``events_page``: the events a filter finds, the live view, the CSV export;
- ``message_page``: one message's timeline, replies and documents;
- ``rows``: events read into what the pages show;
- ``setup_page``: the callback URLs, test callbacks;
- ``quarantine_page``: the refused requests, their replay (a background job for all).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from aiohttp import web

from hub import operator
from hub.console import (
    events_page,
    login,
    message_page,
    overview_page,
    quarantine_page,
    setup_page,
)
from hub.console.render import pages
from hub.settings import Settings

STATIC = Path(str(resources.files("hub.console").joinpath("static")))


LANDING = ("overview", "setup")
"""Where ``/console/`` leads: the overview, once there is one; else the setup page, where a new
user finds the URLs and the test callbacks."""


async def home(request: web.Request) -> web.StreamResponse:
    shown = {entry.name: entry.path for entry in pages(request.app)}
    return operator.redirect(next(shown[name] for name in LANDING if name in shown))


async def without_slash(request: web.Request) -> web.StreamResponse:
    """``/console`` (a typed address, ``?token=`` included): the console, its query kept."""
    query = request.rel_url.raw_query_string
    return operator.redirect("/console/" + (f"?{query}" if query else ""))


def setup(app: web.Application, settings: Settings) -> None:
    app.router.add_get("/console", without_slash)
    app.router.add_get("/console/", home, name="home")
    login.register(app)
    overview_page.register(app, settings)
    events_page.register(app, settings)
    message_page.register(app)
    quarantine_page.register(app, settings)
    setup_page.register(app)
    app.router.add_static(operator.STATIC, STATIC, name="static", append_version=True)
