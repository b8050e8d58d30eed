"""``GET /api/v1/events``: the events matching filters (provider, channel, kind, state,
failure, message id, reference, phone number, times), newest first, a page at a time with a
cursor (keyset pagination on the index's order: no event twice, none missing, however many
arrive meanwhile); with the shared index (``HUB_INDEX_URL``), every replica's events, each
naming its ``replica``."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from core.models import Event
from core.vocabulary import Channel, Failure, Kind, Provider, State
from hub import lookup, readmodel
from hub.api.spec import Api, Param, Problem, json_response, problem
from hub.settings import Settings

_SCHEMAS: dict[str, dict[str, Any]] = {
    "provider": {"type": "string", "enum": [p.value for p in Provider]},
    "channel": {"type": "string", "enum": [c.value for c in Channel]},
    "kind": {"type": "string", "enum": [k.value for k in Kind]},
    "state": {"type": "string", "enum": [s.value for s in State]},
    "failure": {"type": "string", "enum": [f.value for f in Failure]},
    "limit": {"type": "integer", "minimum": 1, "maximum": lookup.MAX_LIMIT},
    "cursor": {"type": "integer", "minimum": 1, "maximum": lookup.MAX_CURSOR},
    **{name: lookup.TIME_SCHEMA for name in ("since", "until", "received_since", "received_until")},
}
PARAMS = [
    Param(name, "query", text, _SCHEMAS.get(name, {"type": "string"}))
    for name, text in lookup.PARAMETERS.items()
]
UNAVAILABLE = (
    "The index is being upgraded or cannot be read, or the shared index (HUB_INDEX_URL) cannot"
    " be reached: try again shortly"
)


def register(api: Api, settings: Settings) -> None:
    @api.operation(
        "GET",
        "/events",
        "Events matching the filters, newest first, a page at a time (duplicates left out)",
        params=PARAMS,
        responses={
            200: ("A page of events; next_cursor gives the next one", readmodel.EventPage[Event]),
            400: ("A parameter cannot be read (the detail says which)", Problem),
            503: (UNAVAILABLE, Problem),
        },
    )
    async def list_events(request: web.Request) -> web.Response:
        unknown = sorted(set(request.query) - set(lookup.PARAMETERS))
        if unknown:
            return problem(400, "bad_parameter", f"{unknown[0]}: not a parameter of this lookup")
        try:
            query = lookup.query(request.query)
        except lookup.BadQuery as exc:
            return problem(400, "bad_parameter", str(exc))
        try:
            found = await request.app[readmodel.READ_MODEL].events(query)
        except readmodel.Unavailable as exc:
            return problem(503, "index_unavailable", str(exc))
        return json_response(found.page)
