"""What the read model answers, whichever index it reads: the structs the API encodes and the
console shows (a page of events, one message with its timeline and replies), and a message
made from its events, one way for both backends.

Each struct is generic in the event: the OpenAPI document describes ``EventItem[Event]``; what
is sent is ``EventItem[msgspec.Raw]``, the bytes as journaled (those the broker got), never
decoded and encoded again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

import msgspec
import orjson

from core.models import Code
from sinks.lookups import current

E = TypeVar("E")
"""The event document: ``core.models.Event`` in the API's description, ``msgspec.Raw`` sent."""


class Unavailable(Exception):
    """The index cannot be read now (being upgraded, a disk fault, the shared database away):
    the message is a sentence for a person (a 503)."""


class EventItem(msgspec.Struct, Generic[E], frozen=True):
    """An event found: its number in the journal of the replica that received it (with the
    shared index, ``replica`` names it; null with the local index: this hub's own), when the
    hub received it, the event."""

    seq: int
    replica: str | None
    received_at: datetime
    event: E


class EventPage(msgspec.Struct, Generic[E], frozen=True):
    """Events newest first; ``next_cursor`` (None: the last page) gives the older ones."""

    items: list[EventItem[E]]
    next_cursor: int | None


@dataclass(frozen=True, slots=True)
class Listing:
    """A page of events and, for the console's live view, where its newest one stands in the
    index's order (the local ``seq``, the shared ``n``: what ``Query.after`` takes)."""

    items: list[EventItem[msgspec.Raw]]
    next_cursor: int | None
    newest: int | None

    @property
    def page(self) -> EventPage[msgspec.Raw]:
        return EventPage(self.items, self.next_cursor)


class TimelineEntry(msgspec.Struct, Generic[E], frozen=True):
    """One event of a message: its state in the provider's time, with the provider's own
    status and error (code and meaning); ``seq`` and ``replica`` as in :class:`EventItem`."""

    seq: int
    replica: str | None
    time: datetime
    received_at: datetime
    kind: str
    state: str
    final: bool
    failure: str | None
    status: Code | None
    error: Code | None
    event: E


Minute = tuple[int, str, str, int]
"""Events counted in a minute: ``(minute, provider, state, count)``, the minute's start in
epoch seconds."""


class MessageRef(msgspec.Struct, frozen=True):
    """Another message: the one a reply answers (its state, when the hub has its events)."""

    provider: str
    message_id: str
    state: str | None


class MessageView(msgspec.Struct, Generic[E], frozen=True):
    """A message (provider and the provider's message id): its current state (a final state is
    never replaced by a later one that is not), every event in the provider's time, the replies
    it got, and for a reply the message it answers."""

    provider: str
    message_id: str
    state: str | None
    """None: the hub has no event of the message itself, only replies to it."""
    final: bool
    failure: str | None
    channel: str | None
    reference: str | None
    recipient: str | None
    sender: str | None
    timeline: list[TimelineEntry[E]]
    replies: list[TimelineEntry[E]]
    in_reply_to: MessageRef | None


@dataclass(frozen=True, slots=True)
class Step:
    """One event of a message as a backend read it: the index's columns and its body."""

    seq: int
    replica: str | None
    time: datetime
    received_at: datetime
    kind: str
    state: str
    final: bool
    failure: str | None
    body: bytes


def message_view(
    provider: str,
    message_id: str,
    timeline: Sequence[Step],
    replies: Sequence[Step],
    *,
    answers: str | None,
    answered_state: str | None,
) -> MessageView[msgspec.Raw]:
    """The message from its events in the provider's time (then arrival order), its replies,
    and for a reply the id and state of the message it answers."""
    entries = [_entry(step) for step in timeline]
    now = current(timeline)
    data = _latest_data(entries)
    return MessageView(
        provider=provider,
        message_id=message_id,
        state=now.state if now else None,
        final=bool(now and now.final),
        failure=now.failure if now else None,
        channel=data.get("channel"),
        reference=data.get("reference"),
        recipient=data.get("recipient"),
        sender=data.get("sender"),
        timeline=[entry for entry, _ in entries],
        replies=[entry for entry, _ in (_entry(step) for step in replies)],
        in_reply_to=None if answers is None else MessageRef(provider, answers, answered_state),
    )


def _entry(step: Step) -> tuple[TimelineEntry[msgspec.Raw], dict[str, Any]]:
    doc = orjson.loads(step.body)
    data = doc.get("data") or {}
    entry = TimelineEntry(
        seq=step.seq,
        replica=step.replica,
        time=step.time,
        received_at=step.received_at,
        kind=step.kind,
        state=step.state,
        final=step.final,
        failure=step.failure,
        status=_code(data.get("status")),
        error=_code(data.get("error")),
        event=msgspec.Raw(step.body),
    )
    return entry, data


def _latest_data(
    entries: Sequence[tuple[TimelineEntry[msgspec.Raw], dict[str, Any]]],
) -> dict[str, str | None]:
    """The message's channel, reference and parties: from its latest event that gives each."""
    found: dict[str, str | None] = {}
    for _, data in reversed(entries):
        for name in ("channel", "reference", "recipient", "sender"):
            if found.get(name) is None and isinstance(data.get(name), str):
                found[name] = data[name]
    return found


def _code(value: Any) -> Code | None:
    if not isinstance(value, dict) or not isinstance(value.get("code"), str):
        return None
    meaning = value.get("meaning")
    return Code(code=value["code"], meaning=meaning if isinstance(meaning, str) else None)
