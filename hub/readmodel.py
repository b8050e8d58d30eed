"""The read model as the operator sees it: the index's lookups (``sinks.index``) joined with the
journal's documents by ``seq`` (``sinks.journal.by_seq``), made into the structs the API
encodes and the console shows: a page of events, one message with its timeline and replies.

Neither file opens the other's: they are joined here, as ``hub.journaled`` joins them for the
command line. The index keeps what lookups need, not the documents: a page or a timeline is a
few dozen lookups on the journal's primary key (see ``bench/lookup.py``), where keeping the
bodies twice would double the disk the hub needs.

Each struct is generic in the event: the OpenAPI document describes ``EventItem[Event]``; what
is sent is ``EventItem[msgspec.Raw]``, the journal's bytes as they are (those the broker got),
never decoded and encoded again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

import msgspec
import orjson

from core.models import Code
from hub.lookup import Query, cursor_of
from sinks import index
from sinks import journal as store
from sinks.index import Step

E = TypeVar("E")
"""The event document: ``core.models.Event`` in the API's description, ``msgspec.Raw`` sent."""


class EventItem(msgspec.Struct, Generic[E], frozen=True):
    """An event found: its number in the journal, when the hub received it, the event."""

    seq: int
    received_at: datetime
    event: E


class EventPage(msgspec.Struct, Generic[E], frozen=True):
    """Events newest first; ``next_cursor`` (None: the last page) gives the older ones."""

    items: list[EventItem[E]]
    next_cursor: int | None


class TimelineEntry(msgspec.Struct, Generic[E], frozen=True):
    """One event of a message: its state in the provider's time, with the provider's own
    status and error (code and meaning)."""

    seq: int
    time: datetime
    received_at: datetime
    kind: str
    state: str
    final: bool
    failure: str | None
    status: Code | None
    error: Code | None
    event: E


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


def events(data_dir: Path, query: Query) -> EventPage[msgspec.Raw]:
    """The page of events the query asks for (``index.NotReady`` while the index is being
    upgraded)."""
    with index.reading(data_dir) as reader:
        hits = reader.search(
            query.filters, before=query.before, after=query.after, limit=query.limit + 1
        )
    more, hits = len(hits) > query.limit, hits[: query.limit]
    found = store.by_seq(data_dir / store.JOURNAL_FILE, [h.seq for h in hits])
    items = [
        EventItem(h.seq, _utc(h.received_at), msgspec.Raw(found[h.seq].envelope.body))
        for h in hits
        if h.seq in found  # (deleted by retention since: the index's row goes within the hour)
    ]
    return EventPage(items, cursor_of(hits[-1].seq) if more else None)


def message(data_dir: Path, provider: str, message_id: str) -> MessageView[msgspec.Raw] | None:
    """One message as the read model knows it (None: the hub has no event of it nor reply to
    it; ``index.NotReady`` while the index is being upgraded)."""
    with index.reading(data_dir) as reader:
        found = reader.message(provider, message_id)
        answered = reader.message(provider, found.answers) if found and found.answers else None
    if found is None:
        return None
    docs = _documents(data_dir, [*found.timeline, *found.replies])
    timeline = _entries(found.timeline, docs)
    current = found.current
    data = _latest_data(timeline, docs)
    in_reply_to = None
    if found.answers is not None:
        then = answered.current if answered is not None else None
        in_reply_to = MessageRef(provider, found.answers, then.state if then else None)
    return MessageView(
        provider=provider,
        message_id=message_id,
        state=current.state if current else None,
        final=bool(current and current.final),
        failure=current.failure if current else None,
        channel=data.get("channel"),
        reference=data.get("reference"),
        recipient=data.get("recipient"),
        sender=data.get("sender"),
        timeline=timeline,
        replies=_entries(found.replies, docs),
        in_reply_to=in_reply_to,
    )


def _documents(data_dir: Path, steps: Sequence[Step]) -> dict[int, tuple[bytes, dict[str, Any]]]:
    """Each step's document, as the journal has it and read (retention may have taken some)."""
    stored = store.by_seq(data_dir / store.JOURNAL_FILE, [s.seq for s in steps])
    return {seq: (s.envelope.body, orjson.loads(s.envelope.body)) for seq, s in stored.items()}


def _entries(
    steps: Sequence[Step], docs: dict[int, tuple[bytes, dict[str, Any]]]
) -> list[TimelineEntry[msgspec.Raw]]:
    entries = []
    for step in steps:
        if step.seq not in docs:
            continue
        body, doc = docs[step.seq]
        data = doc.get("data") or {}
        entries.append(
            TimelineEntry(
                seq=step.seq,
                time=_utc(step.time),
                received_at=_utc(step.received_at),
                kind=step.kind,
                state=step.state,
                final=step.final,
                failure=step.failure,
                status=_code(data.get("status")),
                error=_code(data.get("error")),
                event=msgspec.Raw(body),
            )
        )
    return entries


def _latest_data(
    timeline: Sequence[TimelineEntry[msgspec.Raw]], docs: dict[int, tuple[bytes, dict[str, Any]]]
) -> dict[str, str | None]:
    """The message's channel, reference and parties: from its latest event that gives each."""
    found: dict[str, str | None] = {}
    for entry in reversed(timeline):
        data = docs[entry.seq][1].get("data") or {}
        for name in ("channel", "reference", "recipient", "sender"):
            if found.get(name) is None and isinstance(data.get(name), str):
                found[name] = data[name]
    return found


def _code(value: Any) -> Code | None:
    if not isinstance(value, dict) or not isinstance(value.get("code"), str):
        return None
    meaning = value.get("meaning")
    return Code(code=value["code"], meaning=meaning if isinstance(meaning, str) else None)


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)
