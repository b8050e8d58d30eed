"""The lookups' own pool on the shared index: the connections a hub's API and console read
every replica's events through (the worker writes through its own, ``writer``), read-only,
each wait bounded; a database away (or refusing a statement) is an
:class:`~core.errors.IndexUnavailable` naming why in a line, never the URL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from core.errors import IndexUnavailable
from sinks.index_pg.pool import pool, short

__all__ = ["READERS", "SharedReading"]

READERS = 4
"""Connections the lookups of one hub hold at most (opened when asked, closed when idle)."""


class SharedReading:
    """A small pool for lookups; nothing is connected until the first one (a database away
    at start costs nothing until a lookup asks). From threads; :meth:`open` then
    :meth:`close`."""

    def __init__(self, url: str, *, timeout: float = 10.0, size: int = READERS) -> None:
        self._pool = pool(
            url,
            name="shared-index-reads",
            timeout=timeout,
            min_size=0,
            max_size=size,
            options="-c default_transaction_read_only=on",
            autocommit=True,
            application_name="callback-hub (lookups)",
        )

    def open(self) -> None:
        self._pool.open(wait=False)

    def close(self) -> None:
        self._pool.close()

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A connection of the pool (autocommit: each lookup a statement or a few);
        :class:`IndexUnavailable` when none can be had, a statement outlasts the timeout, or
        the database refuses it (a schema it does not know, rights): said in a line, a 503
        for the API, never a traceback."""
        try:
            with self._pool.connection() as conn:
                yield conn
        except (psycopg.Error, TimeoutError) as exc:
            raise IndexUnavailable(short(exc)) from None
