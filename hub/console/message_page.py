"""The console's message page (``/console/messages/{provider}/{message_id}``): what the read
model knows of one message (``hub.readmodel.message``, what ``GET /api/v1/messages/...``
sends): its current state, its timeline in the provider's time with the provider's status and
error, its replies and the message it answers, and for each event the provider's raw fields
beside the normalized event and the CloudEvents document, each with a copy button."""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass
from typing import Any

import msgspec
import orjson
from aiohttp import web

from core.vocabulary import Provider
from hub import readmodel
from hub.console.events_page import DATA_DIR, UNREADABLE
from hub.console.render import render
from hub.console.rows import message_path
from sinks.index import NotReady


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
        return f"e{self.entry.seq}"


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
        found = await asyncio.to_thread(
            readmodel.message, request.app[DATA_DIR], provider, message_id
        )
    except (NotReady, sqlite3.Error) as exc:
        raise web.HTTPServiceUnavailable(text=f"{UNREADABLE}\n") from exc
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
