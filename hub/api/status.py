"""``GET /api/v1/status``: how far the journal and the pipeline worker are."""

from __future__ import annotations

import time

import msgspec
from aiohttp import web

from hub import backlog
from hub.api.spec import Api, json_response
from hub.settings import Settings
from sinks import index
from sinks import journal as store


class Status(msgspec.Struct, frozen=True):
    indexed_up_to: int
    """The journal's ``seq`` up to which the pipeline worker has processed every event."""
    forwarding: bool
    """A broker is configured: events go on from the journal."""
    backlog_events: int
    """Events journaled and not yet forwarded (0 when forwarding is off)."""
    oldest_unforwarded_age_seconds: float | None
    """How long the oldest of them has waited (None: none waits)."""


def register(api: Api, settings: Settings) -> None:
    journal = settings.data_dir / store.JOURNAL_FILE
    forwarding = backlog.forwarding(settings)

    @api.operation(
        "GET",
        "/status",
        "The journal and the pipeline worker: what is indexed, what waits for the broker",
        responses={200: ("The status", Status)},
    )
    async def get_status(request: web.Request) -> web.Response:
        waiting = backlog.of(settings.data_dir, journal, forwarding=forwarding)
        return json_response(
            Status(
                indexed_up_to=index.read(settings.data_dir).cursor,
                forwarding=forwarding,
                backlog_events=waiting.events,
                oldest_unforwarded_age_seconds=waiting.age(time.time()),
            )
        )
