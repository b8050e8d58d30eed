"""``GET /api/v1/messages/{provider}/{message_id}``: one message as the read model knows it: its
current state, its timeline (every event in the provider's time, with the provider's status and
error), the replies it got, and for a reply the message it answers."""

from __future__ import annotations

from aiohttp import web

from core.models import Event
from core.vocabulary import Provider
from hub import readmodel
from hub.api.events import UNAVAILABLE
from hub.api.spec import Api, Param, Problem, json_response, problem
from hub.settings import Settings

PARAMS = [
    Param(
        "provider",
        "path",
        "the provider",
        {"type": "string", "enum": [p.value for p in Provider]},
    ),
    Param("message_id", "path", "the provider's id of the message"),
]


def register(api: Api, settings: Settings) -> None:
    @api.operation(
        "GET",
        "/messages/{provider}/{message_id}",
        "One message: its current state, its timeline, its replies",
        params=PARAMS,
        responses={
            200: ("The message", readmodel.MessageView[Event]),
            404: ("The hub has no event of this message, nor any reply to it", Problem),
            503: (UNAVAILABLE, Problem),
        },
    )
    async def get_message(request: web.Request) -> web.Response:
        provider, message_id = request.match_info["provider"], request.match_info["message_id"]
        if provider not in {p.value for p in Provider}:
            return problem(404, "not_found", "no such provider")
        try:
            found = await request.app[readmodel.READ_MODEL].message(provider, message_id)
        except readmodel.Unavailable as exc:
            return problem(503, "index_unavailable", str(exc))
        if found is None:
            return problem(404, "not_found", "the hub has no event of this message")
        return json_response(found)
