"""The console's pages rendered: Jinja2 templates (``templates/``, HTML escaped by default) in
the layout every page shares, with its navigation and the session's CSRF token."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jinja2
from aiohttp import web

from hub import operator


@dataclass(frozen=True)
class Entry:
    """A page of the navigation: its route's name, its label, its path."""

    name: str
    label: str
    path: str


NAVIGATION = (
    Entry("overview", "Overview", "/console/overview"),
    Entry("events", "Events", "/console/events"),
    Entry("quarantine", "Quarantine", "/console/quarantine"),
    Entry("setup", "Setup", "/console/setup"),
)
"""The console's pages, in the navigation's order. An entry is shown once a route of that name
is registered (the overview and the events pages come with the read model)."""

_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("hub.console", "templates"),
    autoescape=True,  # every value is escaped unless marked safe: requests as received included
    undefined=jinja2.StrictUndefined,  # a name a template misses is an error, not ""
    trim_blocks=True,
    lstrip_blocks=True,
)


def pages(app: web.Application) -> list[Entry]:
    """The navigation's entries whose page the app serves."""
    named = app.router.named_resources()
    return [e for e in NAVIGATION if e.name in named]


def render(
    request: web.Request, template: str, *, active: str = "", status: int = 200, **context: Any
) -> web.Response:
    """``template`` within the layout; ``active`` is the navigation entry of the page."""
    who = request.get(operator.OPERATOR)
    static = request.app.router["static"]
    html = _TEMPLATES.get_template(template).render(
        static=lambda name: str(static.url_for(filename=name)),
        navigation=pages(request.app),
        active=active,
        csrf=operator.csrf_token(request),
        csrf_field=operator.CSRF_FIELD,
        logged_in=who is not None and who.via == "cookie",
        **context,
    )
    return web.Response(text=html, status=status, content_type="text/html")


def fragment(template: str, **context: Any) -> str:
    """A part of a page (rows a page's script adds to it), escaped as a page is."""
    return _TEMPLATES.get_template(template).render(**context)
