"""The four small interfaces the pipeline worker is written against (it opens no file itself):
what it reads (:class:`Pending`, the journal's ``PendingReader``), its index (:class:`Index`,
``sinks.index.IndexFile`` or, with a shared index, ``hub.shared_index.ReplicatedIndex``), where
it keeps its cursor (:class:`Cursor`, ``sinks.progress.ProgressFile``) and where it publishes
(``sinks.base.Sink``, none without a broker); with a shared index, the history it is filled
with from the local one (:class:`Backfill`)."""

from __future__ import annotations

from typing import Protocol

from sinks.index import Journaled
from sinks.journal import Stored
from sinks.progress import Progress


class Pending(Protocol):
    """The events waiting to be forwarded, in arrival order."""

    def read(self, after: int, limit: int) -> list[Stored]:
        """Up to ``limit`` events with ``seq`` above ``after``."""
        ...

    def last_seq(self) -> int: ...

    def close(self) -> None: ...


class Index(Protocol):
    """What the worker decided about each journaled event (``sinks.index.IndexFile``; with a
    shared index, ``hub.shared_index.ReplicatedIndex``)."""

    @property
    def cursor(self) -> int:
        """Every journaled event up to it is indexed."""
        ...

    @property
    def refilling(self) -> tuple[int, int] | None:
        """Rows after the first ``seq`` and up to the second that lack the read model's
        columns (an index made by an earlier hub): filled from the journal's bodies
        (:meth:`refill`)."""
        ...

    def process(self, events: list[Journaled], window: float) -> list[bool]:
        """Indexes events after the cursor; for each, whether it is a duplicate."""
        ...

    def refill(self, events: list[Journaled], up_to: int) -> None:
        """Fills old rows from their events; every row up to ``up_to`` is done."""
        ...

    def duplicates(self, after: int, up_to: int) -> set[int]: ...

    def prune(self, received_before: float) -> int:
        """Forgets events received before the given time; how many."""
        ...


class Backfill(Protocol):
    """A shared index's history to fill from the local index, once (``hub.shared_index.
    ReplicatedIndex``: a hub that ran alone before ``HUB_INDEX_URL``)."""

    def backfilling(self) -> tuple[int, int] | None:
        """The events after the first ``seq`` and up to the second still to record there."""
        ...

    def backfill(self, events: list[Journaled], window: float, up_to: int) -> None:
        """Records those of ``events`` in the span; every one up to ``up_to`` is done."""
        ...


class Cursor(Protocol):
    """Where the forwarder keeps how far it got (and its counts)."""

    def load(self) -> Progress: ...

    def save(self, progress: Progress) -> None: ...
