"""Events as the console's pages show them: the read model's items (the journal's bytes) read
into rows of the fields a person looks at, for the tables, the live view and the CSV."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import msgspec
import orjson

from hub.readmodel import EventItem


@dataclass(frozen=True)
class Row:
    """One event of a list."""

    seq: int
    replica: str | None
    """The replica that received it (with the shared index; None: this hub)."""
    received_at: datetime
    time: str
    provider: str
    channel: str
    kind: str
    state: str
    final: bool
    failure: str | None
    message_id: str | None
    related_message_id: str | None
    reference: str | None
    sender: str | None
    recipient: str | None
    status: str | None
    error: str | None
    text: str | None

    @property
    def link(self) -> str | None:
        """The message page of the event (a reply without an id of its own: the message it
        answers; none: no page)."""
        target = self.message_id or self.related_message_id
        if not target:
            return None
        return message_path(self.provider, target)


def message_path(provider: str, message_id: str) -> str:
    return f"/console/messages/{quote(provider, safe='')}/{quote(message_id, safe='')}"


def _code(value: Any) -> str | None:
    if not isinstance(value, dict) or not isinstance(value.get("code"), str):
        return None
    meaning = value.get("meaning")
    return f"{value['code']} {meaning}" if isinstance(meaning, str) else value["code"]


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def row(item: EventItem[msgspec.Raw]) -> Row:
    doc = orjson.loads(bytes(item.event))
    data = doc.get("data") or {}
    return Row(
        seq=item.seq,
        replica=item.replica,
        received_at=item.received_at,
        time=str(doc.get("time", "")),
        provider=str(data.get("provider", "")),
        channel=str(data.get("channel", "")),
        kind=str(data.get("kind", "")),
        state=str(data.get("state", "")),
        final=data.get("final") is True,
        failure=_text(data.get("failure")),
        message_id=_text(data.get("message_id")),
        related_message_id=_text(data.get("related_message_id")),
        reference=_text(data.get("reference")),
        sender=_text(data.get("sender")),
        recipient=_text(data.get("recipient")),
        status=_code(data.get("status")),
        error=_code(data.get("error")),
        text=_text(data.get("text")),
    )
