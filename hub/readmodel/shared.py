"""The read model on the shared index (``HUB_INDEX_URL``): every replica's events, whichever
received them, read from PostgreSQL (``sinks.index_pg``) with their bodies, on this hub's own
small pool of connections (``SharedReading``, not the worker's: the worker is another process).

The lookups run in threads of their own (:data:`READERS` of them, one per connection), never
in the loop's default executor: a database that answers slowly or not at all holds those
threads only, each wait bounded by ``HUB_INDEX_TIMEOUT``, and the callbacks, the journal and
the other pages never wait on it. This module imports the PostgreSQL driver: ``hub.readmodel``
imports it only when the setting is there.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC
from functools import partial
from typing import Any, TypeVar

import msgspec
import psycopg

from core.errors import IndexUnavailable
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
from sinks.index_pg import queries
from sinks.index_pg.reading import READERS, SharedReading

log = logging.getLogger(__name__)

T = TypeVar("T")

UNREACHABLE = "The shared index (PostgreSQL) cannot be reached now: try again shortly"


class SharedReadModel:
    """Every replica's events, for this hub's API and console."""

    shared = True

    def __init__(self, url: str, *, timeout: float) -> None:
        self._reading = SharedReading(url, timeout=timeout, size=READERS)
        self._threads = ThreadPoolExecutor(READERS, thread_name_prefix="shared-lookups")

    def open(self) -> None:
        """The pool, opened in the background: nothing waits for the database here."""
        self._reading.open()

    async def close(self) -> None:
        await asyncio.to_thread(self._reading.close)
        self._threads.shutdown(wait=False, cancel_futures=True)

    async def events(self, query: Query) -> Listing:
        return await self._read(partial(_events, query=query))

    async def message(self, provider: str, message_id: str) -> MessageView[msgspec.Raw] | None:
        return await self._read(partial(_message, provider=provider, message_id=message_id))

    async def per_minute(self, since: int, until: int) -> list[Minute]:
        return await self._read(partial(queries.per_minute, since=since, until=until))

    async def _read(self, read: Callable[[psycopg.Connection[Any]], T]) -> T:
        def run() -> T:
            with self._reading.connection() as conn:
                return read(conn)

        try:
            return await offloop.read_in(self._threads, run)
        except IndexUnavailable as exc:
            log.warning("shared index: a lookup not answered (%s)", exc)
            raise Unavailable(UNREACHABLE) from None


def _events(conn: psycopg.Connection[Any], *, query: Query) -> Listing:
    found = queries.search(
        conn, query.filters, before=query.before, after=query.after, limit=query.limit + 1
    )
    more, found = len(found) > query.limit, found[: query.limit]
    items = [
        EventItem(f.seq, f.replica, f.received_at.astimezone(UTC), msgspec.Raw(f.body))
        for f in found
    ]
    next_cursor = cursor_of(found[-1].n) if more else None
    return Listing(items, next_cursor, found[0].n if found else None)


def _message(
    conn: psycopg.Connection[Any], *, provider: str, message_id: str
) -> MessageView[msgspec.Raw] | None:
    found = queries.message(conn, provider, message_id)
    if found is None:
        return None
    answered = queries.message(conn, provider, found.answers) if found.answers else None
    then = answered.current if answered is not None else None
    return message_view(
        provider,
        message_id,
        [_step(s) for s in found.timeline],
        [_step(s) for s in found.replies],
        answers=found.answers,
        answered_state=then.state if then else None,
    )


def _step(s: queries.Step) -> Step:
    return Step(
        s.seq, s.replica, s.time.astimezone(UTC), s.received_at.astimezone(UTC), s.kind, s.state,
        s.final, s.failure, s.body,
    )  # fmt: skip
