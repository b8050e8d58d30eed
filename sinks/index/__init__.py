"""The pipeline worker's own file, ``index.sqlite3`` beside the journal: what it decided about
each journaled event, how far it got, its counts, and the read model the operator looks events
and messages up in.

The journal is insert-only: a callback's events are appended and synced, nothing is looked up
on the way (no deduplication, no secondary index). Everything else about an event is decided
here, after the acknowledgement, by the one worker that reads the journal in ``seq`` order:

- ``indexed``: one row per journaled event (its ``seq``), with what the read model looks events
  up by (provider and message id, the message it answers, reference, sender and recipient,
  channel, kind, state, failure, whether it is final, the provider's time and the reception
  time) and whether it is a **duplicate**: a provider's retry, an event whose id was already
  journaled (and not itself a duplicate) within the deduplication window before it. A duplicate
  is never published, shown or replayed;
- ``worker``: the worker's cursor (every event up to it is indexed) and its counts: events by
  provider, channel, kind, state and failure (duplicates left out), duplicates by provider,
  read by the hub's ``/metrics`` at each scrape (:class:`IndexCollector`);
- ``minutes``: the events counted by the minute of their reception, provider and state
  (duplicates left out), what the console's overview plots.

All three are written in one transaction per batch, not synced at each
(``synchronous=NORMAL``): after a power loss the cursor may go back and the same events be
indexed again, with the same decisions (a duplicate is a fact of the journal: ids and
reception times) and counted once, the counts having gone back with the cursor.

This package opens only its own file, never the journal nor the forwarder's cursor; what it is
given is the journal's ``seq``, event id, reception time and CloudEvents body, and what its
lookups give back is ``seq``: ``hub`` joins them with the journal's documents.

- ``schema``: the tables and indexes, the format's version and the upgrade from the first one;
- ``worker``: :class:`IndexFile`, the worker's writes (index, refill, prune), a batch decided
  (:meth:`IndexFile.prepare`) before it is written (:meth:`IndexFile.commit`);
- ``counts``: the cursor and counts as anyone reads them, the duplicates, the collector;
- ``queries``: the read model's lookups (:func:`reading`; what they take, :class:`Filters`,
  is ``sinks.lookups``', shared with the shared index).
"""

from sinks.index.counts import (
    EVENT_LABELS,
    Counts,
    IndexCollector,
    State,
    duplicates,
    read,
    retained_duplicates,
)
from sinks.index.queries import (
    TIMELINE_LIMIT,
    Hit,
    Message,
    NotReady,
    Reader,
    Step,
    reading,
)
from sinks.index.schema import INDEX_FILE, VERSION, NewerIndex
from sinks.index.worker import Entry, IndexFile, Journaled, Prepared, entry
from sinks.lookups import Filters, Party

__all__ = [
    "EVENT_LABELS",
    "INDEX_FILE",
    "TIMELINE_LIMIT",
    "VERSION",
    "Counts",
    "Entry",
    "Filters",
    "Hit",
    "IndexCollector",
    "IndexFile",
    "Journaled",
    "Message",
    "NewerIndex",
    "NotReady",
    "Party",
    "Prepared",
    "Reader",
    "State",
    "Step",
    "duplicates",
    "entry",
    "read",
    "reading",
    "retained_duplicates",
]
