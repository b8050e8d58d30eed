"""The read model on this hub's own files: the worker's index's lookups (``sinks.index``)
joined with the journal's documents by ``seq`` (``sinks.journal.by_seq``).

Neither file opens the other's: they are joined here, as ``hub.journaled`` joins them for the
command line. The index keeps what lookups need, not the documents: a page or a timeline is a
few dozen lookups on the journal's primary key (see ``bench/lookup.py``), where keeping the
bodies twice would double the disk the hub needs.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

import msgspec

from hub import offloop
from hub.lookup import Query, cursor_of
from hub.readmodel.views import (
    EventItem,
    Listing,
    MessageView,
    Minute,
    Step,
    Unavailable,
    message_view,
)
from sinks import index
from sinks import journal as store

P = ParamSpec("P")
T = TypeVar("T")

UNREADABLE = "The index is being upgraded, or cannot be read: try again shortly"


class LocalReadModel:
    """The read model of one data directory (``HUB_INDEX_URL`` unset), read in a thread of the
    loop's default executor (``hub.offloop``)."""

    shared = False

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    async def events(self, query: Query) -> Listing:
        return await self._read(events, query)

    async def message(self, provider: str, message_id: str) -> MessageView[msgspec.Raw] | None:
        return await self._read(message, provider, message_id)

    async def per_minute(self, since: int, until: int) -> list[Minute]:
        return await self._read(per_minute, since, until)

    async def _read(
        self, read: Callable[Concatenate[Path, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        try:
            return await offloop.read(read, self.data_dir, *args, **kwargs)
        except (index.NotReady, sqlite3.Error) as exc:
            raise Unavailable(UNREADABLE) from exc


def events(data_dir: Path, query: Query) -> Listing:
    """The page of events the query asks for (``index.NotReady`` while the index is being
    upgraded)."""
    with index.reading(data_dir) as reader:
        hits = reader.search(
            query.filters, before=query.before, after=query.after, limit=query.limit + 1
        )
    more, hits = len(hits) > query.limit, hits[: query.limit]
    found = store.by_seq(data_dir / store.JOURNAL_FILE, [h.seq for h in hits])
    items = [
        EventItem(h.seq, None, _utc(h.received_at), msgspec.Raw(found[h.seq].envelope.body))
        for h in hits
        if h.seq in found  # (deleted by retention since: the index's row goes within the hour)
    ]
    next_cursor = cursor_of(hits[-1].seq) if more else None
    return Listing(items, next_cursor, hits[0].seq if hits else None)


def per_minute(data_dir: Path, since: int, until: int) -> list[Minute]:
    """The worker's counts by minute (``sinks.index``'s ``minutes``)."""
    with index.reading(data_dir) as reader:
        return reader.per_minute(since, until)


def message(data_dir: Path, provider: str, message_id: str) -> MessageView[msgspec.Raw] | None:
    """One message as the read model knows it (None: the hub has no event of it nor reply to
    it; ``index.NotReady`` while the index is being upgraded)."""
    with index.reading(data_dir) as reader:
        found = reader.message(provider, message_id)
        answered = reader.message(provider, found.answers) if found and found.answers else None
    if found is None:
        return None
    bodies = _bodies(data_dir, [*found.timeline, *found.replies])
    then = answered.current if answered is not None else None
    return message_view(
        provider,
        message_id,
        _steps(found.timeline, bodies),
        _steps(found.replies, bodies),
        answers=found.answers,
        answered_state=then.state if then else None,
    )


def _bodies(data_dir: Path, steps: Sequence[index.Step]) -> dict[int, bytes]:
    """Each step's document, as the journal has it (retention may have taken some)."""
    stored = store.by_seq(data_dir / store.JOURNAL_FILE, [s.seq for s in steps])
    return {seq: s.envelope.body for seq, s in stored.items()}


def _steps(steps: Sequence[index.Step], bodies: dict[int, bytes]) -> list[Step]:
    return [
        Step(
            s.seq, None, _utc(s.time), _utc(s.received_at), s.kind, s.state, s.final, s.failure,
            bodies[s.seq],
        )
        for s in steps
        if s.seq in bodies
    ]  # fmt: skip


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)
