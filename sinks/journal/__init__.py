"""The journal: SQLite in WAL mode in the hub's data directory, the spine of the hub.

Every accepted callback's events are committed here before the provider is answered; the
forwarder then publishes them to the broker and records how far it got (``sinks.progress``).

- ``schema``: the tables, the files, connections, and the records given back;
- ``writer``: :class:`Journal`, the group commit in its writer thread, and its answers when
  the disk fails (full, gone, stalled);
- ``events``, ``quarantine``: what the writer does to each table (and the quarantine's reads);
- ``files``: that the files are still the ones opened, their sizes, the cap's shares;
- ``reader``: reading events from any thread, and the counts of ``hub journal stats``.

What the rest of the hub uses is here.
"""

from sinks.journal.quarantine import quarantined
from sinks.journal.quarantine import waiting as quarantine_waiting
from sinks.journal.reader import PendingReader, last_seq, select, stats
from sinks.journal.schema import (
    DAY,
    JOURNAL_FILE,
    Appended,
    Quarantined,
    QuarantineEntry,
    Stats,
    Stored,
)
from sinks.journal.writer import Journal

__all__ = [
    "DAY",
    "JOURNAL_FILE",
    "Appended",
    "Journal",
    "PendingReader",
    "QuarantineEntry",
    "Quarantined",
    "Stats",
    "Stored",
    "last_seq",
    "quarantine_waiting",
    "quarantined",
    "select",
    "stats",
]
