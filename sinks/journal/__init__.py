"""The journal: SQLite in WAL mode in the hub's data directory, the spine of the hub.

Every accepted callback's events are appended here (insert-only, nothing looked up) and synced
before the provider is answered; the pipeline worker then reads them in order, marks retries
and indexes them in its own file (``sinks.index``), publishes them to the broker and records how
far it got (``sinks.progress``): files the journal never opens, as they never open the
journal's.

- ``schema``: the tables, the files, connections, and the records given back;
- ``writer``: :class:`Journal`, the loop's side of the group commit: batches handed to the
  writer thread, timeouts, readiness (a stalled disk);
- ``commit``: the writer thread's side: a batch in one transaction, and what it finds wrong on
  disk (files gone or replaced, full, unwritable, the cap);
- ``checkpoints``: the checkpoint thread;
- ``events``, ``quarantine``: what the writer does to each table (and the quarantine's reads);
- ``files``: that the files are still the ones opened, their sizes, the cap's shares;
- ``reader``: reading events from any thread (after a ``seq``, or by ``seq`` for the read
  model's pages), the journal's counts, and what lies after a ``seq`` (which ``seq``, the
  forwarder's cursor, is the caller's to say: ``hub.backlog``).

What the rest of the hub uses is here.
"""

from sinks.journal.files import size_on_disk
from sinks.journal.quarantine import counted as quarantine_counted
from sinks.journal.quarantine import quarantined
from sinks.journal.quarantine import selected as quarantine_selected
from sinks.journal.quarantine import summaries as quarantine_summaries
from sinks.journal.quarantine import waiting as quarantine_waiting
from sinks.journal.reader import (
    PendingReader,
    after,
    by_seq,
    last_seq,
    marked_prefix,
    select,
    stats,
)
from sinks.journal.schema import (
    DAY,
    JOURNAL_FILE,
    After,
    Quarantined,
    QuarantineEntry,
    QuarantineSelection,
    QuarantineSummary,
    Stats,
    Stored,
)
from sinks.journal.writer import Journal

__all__ = [
    "DAY",
    "JOURNAL_FILE",
    "After",
    "Journal",
    "PendingReader",
    "QuarantineEntry",
    "QuarantineSelection",
    "QuarantineSummary",
    "Quarantined",
    "Stats",
    "Stored",
    "after",
    "by_seq",
    "last_seq",
    "marked_prefix",
    "quarantine_counted",
    "quarantine_selected",
    "quarantine_summaries",
    "quarantine_waiting",
    "quarantined",
    "select",
    "size_on_disk",
    "stats",
]
