"""The read model as the operator sees it: a page of events, one message with its timeline and
replies, made into the structs the API encodes and the console shows (``views``), from one of
two backends, chosen by the settings and opened in the app's cleanup context (:func:`opened`):

- ``local`` (``HUB_INDEX_URL`` unset): this hub's own index (``sinks.index``) joined with its
  journal's documents by ``seq``; what this hub received;
- ``shared`` (``HUB_INDEX_URL`` set): every replica's events from the shared index on
  PostgreSQL (``sinks.index_pg``), their bodies with them; the driver is imported only then.

Both answer alike (one test suite runs on both): the same filters, duplicates left out,
newest first with keyset pages (the cursor is the last item's place in the index's order: the
local ``seq``, the shared ``n``; opaque to a client), a message's state by the same rule
(``sinks.lookups.current``). An event's ``seq`` is its number in the journal of the replica
that received it, ``replica`` names that replica (null with the local index). A backend that
cannot be read raises :class:`Unavailable` (a 503, never a 500).

The handlers ask for ``request.app[READ_MODEL]`` and await it: each backend reads in threads
(the local one in the loop's default executor, the shared one in threads of its own), never on
the loop that answers providers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

import msgspec
from aiohttp import web

from hub.lookup import Query
from hub.readmodel.local import LocalReadModel, events, message
from hub.readmodel.views import (
    EventItem,
    EventPage,
    Listing,
    MessageRef,
    MessageView,
    Minute,
    TimelineEntry,
    Unavailable,
)
from hub.settings import Settings

__all__ = [
    "READ_MODEL",
    "EventItem",
    "EventPage",
    "Listing",
    "MessageRef",
    "MessageView",
    "Minute",
    "ReadModel",
    "TimelineEntry",
    "Unavailable",
    "events",
    "message",
    "opened",
]


class ReadModel(Protocol):
    """What the API and the console read events and messages from."""

    @property
    def shared(self) -> bool:
        """Every replica's events (the shared index), not this hub's alone."""

    async def events(self, query: Query) -> Listing:
        """The page of events the query asks for."""

    async def message(self, provider: str, message_id: str) -> MessageView[msgspec.Raw] | None:
        """One message (None: no event of it nor reply to it)."""

    async def per_minute(self, since: int, until: int) -> list[Minute]:
        """Events received in the minutes of [``since``, ``until``) (epoch seconds, whole
        minutes) counted by minute, provider and state, oldest first (the overview's plot)."""


READ_MODEL = web.AppKey("read_model", ReadModel)


@asynccontextmanager
async def opened(settings: Settings) -> AsyncIterator[ReadModel]:
    """The read model the settings choose, open (the shared index's pool, in the background:
    a database away at start delays nothing), closed on the way out."""
    if settings.index_url is None:
        yield LocalReadModel(settings.data_dir)
        return
    # The driver is the optional extra (callback-hub[postgres]): imported only where the
    # shared index is configured, as hub.forward_process does for the worker.
    from hub.readmodel.shared import SharedReadModel

    model = SharedReadModel(settings.index_url.get_secret_value(), timeout=settings.index_timeout)
    model.open()
    try:
        yield model
    finally:
        await model.close()
