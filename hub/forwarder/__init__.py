"""The pipeline worker: every journaled event processed once, in arrival order, after the
acknowledgement; with a broker, published to it at least once.

The callbacks' side only appends to the journal (``sinks.journal``: insert-only, one shared sync,
nothing looked up). Everything else happens here, in ``seq`` order, a batch at a time:

1. **index** (with or without a broker): each event goes to the worker's own file
   (``sinks.index``), which decides whether it is a provider's retry within the deduplication
   window (a *duplicate*), counts events and duplicates, and keeps what the console looks
   events up by. Its cursor moves in the same transaction;
2. **publish** (with a broker): the batch, duplicates left out, goes to the broker with every
   message in flight; the forwarder's cursor (``sinks.progress``) moves past the confirmed
   prefix, duplicates included. When the broker is down it waits and tries again: the backlog
   waits on disk, in the journal. After a crash the events after the cursor are sent at start;
   a batch confirmed just before the crash may be on the broker already. So the first batch
   after a start is first shown to the sink (``Sink.already_published``: the RabbitMQ sink reads
   its stream's tail), and what is there already is not sent again; a sink that cannot tell (no
   stream) gets the whole batch again, same ``message_id``. After a broker outage the batch in
   flight is sent again whole (see ``_pause``).

The index is never behind the forwarder's cursor: an index file newer than the journal (an
upgrade) is first brought up to it, nothing published meanwhile. An index of an earlier format
(no read model) keeps its rows and decisions; once caught up, the worker fills their read
model's columns from the journal's bodies, a batch at a time between its other work (the index
never opens the journal). Likewise with a shared index (``HUB_INDEX_URL``) set on a hub that
ran alone: once caught up, the worker records there the events its local index had before,
still in the journal, with their local decisions (:class:`Backfill`, once: the shared index
keeps how far it got). Index writes run in a thread, so that an inline worker never holds
the hub's event loop on a disk that stalls.

It only reads the journal, so it runs in a process of its own (``hub forward``, what
``hub serve`` starts; see ``hub.forward_process``) or in the hub's event loop. It is written
against four small interfaces and opens no file itself: what it reads (:class:`Pending`, the
journal's ``PendingReader``), its index (:class:`Index`, ``sinks.index.IndexFile``), where it
publishes (``sinks.base.Sink``, none without a broker) and where it keeps its cursor
(:class:`Cursor`, ``sinks.progress.ProgressFile``).

- ``ports``: those interfaces;
- ``rounds``: one batch (index, publish, cursor), one batch of the refill, of the backfill;
- ``worker``: :class:`Forwarder`, the loop around the rounds: start and stop, pruning, waits,
  the pauses of an outage (the broker, the shared index).
"""

from hub.forwarder.ports import Backfill, Cursor, Index, Pending
from hub.forwarder.rounds import RESEND_LOOKBACK_BATCHES
from hub.forwarder.worker import PRUNE_INTERVAL, Forwarder

__all__ = [
    "PRUNE_INTERVAL",
    "RESEND_LOOKBACK_BATCHES",
    "Backfill",
    "Cursor",
    "Forwarder",
    "Index",
    "Pending",
]
