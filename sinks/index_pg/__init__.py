"""The shared index on PostgreSQL (``HUB_INDEX_URL``): every replica's events in one database,
one view of them for the console and the API of any replica, and the deduplication across
replicas.

Each replica keeps its own journal, its own local index (``sinks.index``) and its own cursor;
its pipeline worker also writes here, a batch at a time, beside its local index
(``hub.shared_index`` joins the two). This package opens only its own database, never a
replica's files: what it is given is each event's ``seq`` in its replica's journal, id,
reception time, body and the read model's columns (``sinks.eventrow``).

**Schema** (``migrations/versions``, applied at the worker's start by alembic,
:mod:`sinks.index_pg.migrate`, under an advisory lock so that replicas starting together
migrate once):

- ``events``: one row per journaled event of every replica, keyed by ``(replica, seq)``: the
  local index's columns (provider, message id, related message, reference, sender, recipient,
  channel, kind, state, failure, final, the provider's and the reception time, the duplicate
  mark), the replica that took it and the CloudEvents body as journaled (the other replicas
  cannot read its journal). ``n``, an identity, orders them all (newest first, keyset pages),
  in the order batches commit (``writer.ORDER_LOCK``: one recording transaction at a time);
  partial indexes on ``NOT duplicate`` serve the console's lookups (provider and message id,
  replies, reference, sender, recipient, state: each ending in ``n``; time; reception time
  for retention).
- ``claims``: one row per event id, the copy that was **not** a duplicate: its reception
  time and the ``(replica, seq)`` that owns it.
- ``replicas``: how far each replica has recorded (its last ``seq`` here), and what of its
  history, from before it used this index, remains to record (``backfill_after`` < ``seq`` <=
  ``backfill_up_to``, :meth:`SharedIndex.begin_backfill`; ``hub.shared_index``).

A replica is named by its data directory, not its host (``hub.shared_index``): a journal's
``seq`` means something only with the journal it numbers.

**Deduplication across replicas**: a worker's batch is one statement (:meth:`SharedIndex.
record`): the events its local index did not find duplicate are *candidates*; an
``INSERT INTO claims ... ON CONFLICT (id) DO UPDATE ... WHERE`` takes the claim of each one
whose id has none, or whose claim is older than the window (the window counts from the last
copy that was not a duplicate, as in the local index), or is its own (the same batch recorded
again after a crash: same decisions); ``RETURNING`` names the candidates that got their claim,
and every other event of the batch is written to ``events`` as a duplicate, in the same
statement and transaction. Two replicas recording the same id at once: the second waits for
the first's commit on the claim's key and finds it taken. Claims are taken in id order (no
deadlock between two batches).

**Recorded but not yet published**: the claim is taken before the worker publishes, so the
replica that owns it must publish it. Its own journal is its outbox: the worker records a batch
here, then in its local index (the local index's cursor moves after the shared commit), then
publishes, and its forwarder's cursor moves past what the broker confirmed. A worker that dies
in between finds at its next start, on the same data directory, the events after its cursors:
recorded again (the claims it owns come back its own: nothing doubles, nothing is lost) and
published then. That holds while the replica comes back with its data directory (a
StatefulSet's volume).

**Reads**: the API and the console of every replica look events up here (``hub.readmodel``'s
shared backend), on a pool of their own (:class:`SharedReading`: read-only, autocommit, none
connected until asked), with the local index's lookups for the same ``sinks.lookups.Filters``
(``queries``): duplicates left out, newest first by ``n``, keyset pages on it, a message's
timeline in the provider's time then ``n``, its replies, what it answers.

**Not built yet** (next sessions): a replica that never comes back (its
claimed, unpublished events: the ``replicas`` table says how far it recorded, a published mark
and a takeover by another replica are to come). Built since: the backfill of a hub that ran
alone (``hub.shared_index``: its local index's events recorded here once, the ``replicas``
table keeping how far); the database away said by ``/metrics`` (``hub_shared_index_connected``,
the alert ``HubSharedIndexUnreachable``), ``/api/v1/status``, the console's overview and ``hub
check``, the hub staying ready as during a broker outage (events wait in the journal: see
``hub.forwarder``); retention by batches (:meth:`SharedIndex.prune`); deploy:
``deploy/kubernetes/postgres-cluster.yaml``, a CloudNativePG cluster, and compose's
``postgres`` service.

- ``migrate``: the schema, brought to this version at start (alembic);
- ``writer``: :class:`SharedIndex`, the worker's batches (a pool of psycopg connections);
- ``reading``: :class:`SharedReading`, the lookups' own pool (the hub's serve process);
- ``pool``: the two pools made alike (every wait bounded by ``HUB_INDEX_TIMEOUT``), a driver's
  error in one line;
- ``queries``: the read model's lookups of every replica's events (``search``, ``message``).
"""

from sinks.index_pg.migrate import NewerSchema, head, upgrade
from sinks.index_pg.queries import Found, Message, Step, by_message, by_phone, message, search
from sinks.index_pg.reading import SharedReading
from sinks.index_pg.writer import IndexUnavailable, SharedIndex

__all__ = [
    "Found",
    "IndexUnavailable",
    "Message",
    "NewerSchema",
    "SharedIndex",
    "SharedReading",
    "Step",
    "by_message",
    "by_phone",
    "head",
    "message",
    "search",
    "upgrade",
]
