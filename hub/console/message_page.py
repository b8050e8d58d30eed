"""The console's message page (``/console/messages/{provider}/{message_id}``): what the read
model knows of one message (``hub.readmodel.message``, what ``GET /api/v1/messages/...``
sends): its current state, its timeline in the provider's time with the provider's status and
error, its replies and the message it answers, and for each event the provider's raw fields
beside the normalized event and the CloudEvents document, each with a copy button. With the
shared index (``HUB_INDEX_URL``), whichever replica received them, each event naming it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
import orjson
from aiohttp import web

from core.vocabulary import Provider
from hub import readmodel
from hub.console.render import render
from hub.console.rows import message_path


@dataclass(frozen=True)
class Shown:
    """One event of the page: its timeline entry and its documents, pretty-printed."""

    entry: readmodel.TimelineEntry[msgspec.Raw]
    raw: str
    normalized: str
    document: str
    text: str | None
    sender: str | None
    message_id: str | None

    @property
    def anchor(self) -> str:
        """The event's id on the page (with the shared index, two replicas' ``seq`` may be
        the same: the replica's name too)."""
        replica = self.entry.replica
        return f"e{self.entry.seq}" + (f"-{replica}" if replica else "")


def _pretty(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()


def shown(entry: readmodel.TimelineEntry[msgspec.Raw]) -> Shown:
    doc = orjson.loads(bytes(entry.event))
    data = doc.get("data") or {}
    normalized = {k: v for k, v in data.items() if k != "raw"}
    return Shown(
        entry=entry,
        raw=_pretty(data.get("raw", {})),
        normalized=_pretty(normalized),
        document=_pretty(doc),
        text=data.get("text") if isinstance(data.get("text"), str) else None,
        sender=data.get("sender") if isinstance(data.get("sender"), str) else None,
        message_id=data.get("message_id") if isinstance(data.get("message_id"), str) else None,
    )


async def message(request: web.Request) -> web.Response:
    provider, message_id = request.match_info["provider"], request.match_info["message_id"]
    if provider not in {p.value for p in Provider}:
        raise web.HTTPNotFound(text="no such provider\n")
    try:
        found = await request.app[readmodel.READ_MODEL].message(provider, message_id)
    except readmodel.Unavailable as exc:
        raise web.HTTPServiceUnavailable(text=f"{exc}.\n") from exc
    if found is None:
        return render(
            request,
            "message.html",
            active="events",
            status=404,
            title=f"Message {message_id}",
            provider=provider,
            message_id=message_id,
            view=None,
            timeline=[],
            replies=[],
            answered=None,
        )
    answered = found.in_reply_to
    return render(
        request,
        "message.html",
        active="events",
        title=f"Message {message_id}",
        provider=provider,
        message_id=message_id,
        view=found,
        timeline=[shown(e) for e in found.timeline],
        replies=[shown(e) for e in found.replies],
        answered=(answered, message_path(answered.provider, answered.message_id))
        if answered
        else None,
        reply_path=lambda s: message_path(provider, s.message_id) if s.message_id else None,
    )


def register(app: web.Application) -> None:
    app.router.add_get("/console/messages/{provider}/{message_id:.+}", message, name="message")
