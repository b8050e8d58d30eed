"""The operator's JSON API under ``/api/v1/`` (behind ``hub.operator``'s token).

One module per resource, each with a ``register(api, ...)`` that declares its operations on the
:class:`~hub.api.spec.Api`; :func:`setup` puts them together and serves the OpenAPI document
(``/api/v1/openapi.json``) made from the same declarations.
"""

from __future__ import annotations

from importlib import metadata

from aiohttp import web

from hub.api import events, jobs, messages, quarantine, status, urls
from hub.api.spec import Api
from hub.settings import Settings


def build(settings: Settings) -> Api:
    """Every operation of the API, declared (also what the OpenAPI test reads)."""
    api = Api("/api/v1", title="callback hub", version=metadata.version("callback-hub"))
    status.register(api, settings)
    events.register(api, settings)
    messages.register(api, settings)
    quarantine.register(api, settings)
    jobs.register(api, settings)
    urls.register(api, settings)
    return api


def setup(app: web.Application, settings: Settings) -> None:
    build(settings).install(app)
