"""The pipeline worker's index when ``HUB_INDEX_URL`` is set: its local file
(``sinks.index``) and the shared database of every replica (``sinks.index_pg``), one decision
per event.

Each batch is read and decided by the local file first (a copy of an event this replica has
within the window), without writing; the shared index then records it and names the events
another replica had first; the local file writes the batch last, those marked duplicate too,
and moves its cursor. So the shared commit comes before the local one: a worker that dies
between them records the batch again at its next start and gets the same decisions (its own
claims are its own), and the local index, which the forwarder's publishing and a restart go by,
never says "not a duplicate" of an event another replica has.

**Backfill**: a hub that ran alone has events in its local index the shared one never saw.
Before its first batch is recorded, the shared index is asked what this replica's local index
holds (up to its cursor) that it does not (:meth:`SharedIndex.begin_backfill`: all of it for a
replica never seen there, what came after its last record for one that ran alone meanwhile);
the worker then gives those events, read from the journal, to :meth:`ReplicatedIndex.backfill`
a batch at a time between its other work, with the local index's decisions: they take their
claims as a normal batch does (an id another replica already claimed is a duplicate there; the
local decision stays as it was, published or not). The ``replicas`` table keeps how far it got.

The replica is named by its data directory (``replica`` there, made at the worker's first start
with the host's name and a random part): the ``seq`` it records are its journal's.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
from collections.abc import Iterator, Sequence
from pathlib import Path

from sinks.index import Entry, IndexFile, Journaled, entry
from sinks.index_pg import SharedIndex
from sinks.index_pg.writer import Record

REPLICA_FILE = "replica"


class ReplicatedIndex:
    """The forwarder's index (``hub.forwarder.Index``) on both: written locally and shared."""

    def __init__(self, local: IndexFile, shared: SharedIndex) -> None:
        self.local = local
        self.shared = shared
        self._backfilling: tuple[int, int] | None = None
        self._begun = False

    @property
    def cursor(self) -> int:
        return self.local.cursor

    @property
    def refilling(self) -> tuple[int, int] | None:
        return self.local.refilling

    def process(self, events: Sequence[Journaled], window: float) -> list[bool]:
        """Indexes events after the cursor, here and in the shared index; for each, whether it
        is a duplicate (of a copy here, or of one another replica had first). Raises
        ``IndexUnavailable`` with nothing written when the shared index cannot be reached."""
        self.backfilling()  # decided before this replica's first record (which moves it on)
        prepared = self.local.prepare(events, window)
        elsewhere = self.shared.record([_record(e) for e in prepared.entries], window)
        return self.local.commit(prepared, elsewhere)

    def backfilling(self) -> tuple[int, int] | None:
        """The events after the first ``seq`` and up to the second that the local index has
        and the shared one does not (it ran alone before), None if none (raises
        ``IndexUnavailable``: asked again)."""
        if not self._begun:
            self._backfilling = self.shared.begin_backfill(self.local.cursor)
            self._begun = True
        return self._backfilling

    def backfill(self, events: Sequence[Journaled], window: float, up_to: int) -> None:
        """Records in the shared index these events of the local index (in ``seq`` order, read
        from the journal), with its decisions, and that every one up to ``up_to`` is done."""
        span = self.backfilling()
        if span is None:
            return
        after, end = span
        wanted = [e for e in events if after < e[0] <= end]
        marked = self.local.duplicates(wanted[0][0] - 1, wanted[-1][0]) if wanted else set()
        records = [_record(entry(e, e[0] in marked)) for e in wanted]
        done = min(max(up_to, after), end)
        self.shared.backfill(records, window, done)
        self._backfilling = (done, end) if done < end else None

    def refill(self, events: Sequence[Journaled], up_to: int) -> None:
        self.local.refill(events, up_to)

    def duplicates(self, after: int, up_to: int) -> set[int]:
        return self.local.duplicates(after, up_to)

    def prune(self, received_before: float) -> int:
        deleted = self.local.prune(received_before)
        self.shared.prune(received_before)
        return deleted


def _record(e: Entry) -> Record:
    return Record(e.seq, e.id, e.key[0], e.received_at, e.duplicate, e.columns, e.body)


def replica_name(data_dir: Path) -> str:
    """This data directory's name among the replicas (made and kept the first time)."""
    path = data_dir / REPLICA_FILE
    name = f"{socket.gethostname()}-{secrets.token_hex(4)}"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as out:
        out.write(name + "\n")
        out.flush()
        os.fsync(out.fileno())
    return name


@contextlib.contextmanager
def replicated(
    url: str, data_dir: Path, local: IndexFile, *, timeout: float
) -> Iterator[ReplicatedIndex]:
    """The local index and the shared one at ``url``, its pool open (in the background: a
    database away is tried again at each batch, which waits ``timeout`` seconds at most),
    closed on the way out."""
    shared = SharedIndex(url, replica_name(data_dir), timeout=timeout)
    shared.open()
    try:
        yield ReplicatedIndex(local, shared)
    finally:
        shared.close()
