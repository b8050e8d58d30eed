"""``GET /api/v1/status``: the journal, the pipeline worker, the broker, the shared index, the
quarantine, the callbacks' rates and the pull sources, as an operator's overview reads them.

Everything is read from where it is kept, off the event loop (a stalled disk must not hold up
the callbacks): the journal's own files and numbers, the worker's index (``sinks.index``) and
progress file (``sinks.progress``), the hub's journal writer for its readiness, and the rates
sampled from the hub's callback counter (``hub.rates``). Whether the broker is connected is the
inline worker's sink's word when the worker runs in the hub (``HUB_FORWARDER=inline``), else
what the worker process last wrote in its progress file; whether the shared index
(``HUB_INDEX_URL``) is reached likewise (the inline worker's last batch, or the progress file).
Neither is a condition of readiness: while either is away, callbacks are acknowledged and wait
in the journal (``hub.handlers.ready``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import msgspec
from aiohttp import web

from hub import backlog, offloop, rates
from hub.api.spec import Api, json_response
from hub.handlers import FORWARDER, JOURNAL
from hub.pull import sources as pull_sources
from hub.settings import Settings
from sinks import index, progress
from sinks import journal as store

RATE_WINDOWS = {"last_minute": 60.0, "last_15_minutes": 900.0}


class JournalStatus(msgspec.Struct, frozen=True):
    ready: bool
    """The journal takes writes now (else callbacks are told to retry)."""
    trouble: str | None
    """Why it does not, when it does not (``journal_full``...)."""
    size_bytes: int
    """Its files on disk: the database, its WAL and the WAL's index."""
    last_seq: int
    """The number of the last event journaled: events journaled since the journal was made."""
    events_held: int
    """Events it holds, from the oldest kept to the last (about: exact unless some between were
    deleted)."""
    oldest_event_age_seconds: float | None
    """Age of the oldest event it holds, by reception time (None: it holds none)."""


class WorkerStatus(msgspec.Struct, frozen=True):
    runs: str
    """``process`` (``hub forward``, started by the hub) or ``inline`` (the hub's own loop)."""
    indexed_up_to: int
    """Every event up to this number is indexed (deduplicated, searchable)."""
    lag_events: int
    """Events journaled and not indexed yet (``last_seq`` - ``indexed_up_to``)."""


class BrokerStatus(msgspec.Struct, frozen=True):
    configured: bool
    """A broker is configured (``HUB_RABBITMQ_URL``): events go on from the journal."""
    connected: bool | None
    """The worker's connection is up (None: no broker, or no worker ran yet)."""
    forwarded_up_to: int
    """Every event up to this number was confirmed by the broker."""


class SharedIndexStatus(msgspec.Struct, frozen=True):
    configured: bool
    """A shared index is configured (``HUB_INDEX_URL``): the worker records every event there."""
    connected: bool | None
    """The worker's last batch was recorded there (None: none configured, or no worker ran
    yet). While it is not, callbacks are still acknowledged and wait in the journal."""
    waiting_events: int
    """Events journaled and not yet recorded there (nor indexed: the worker's lag)."""


class QuarantineStatus(msgspec.Struct, frozen=True):
    waiting: int
    """Refused requests not replayed yet."""


class RateStatus(msgspec.Struct, frozen=True):
    window_seconds: float
    """The span counted: the window, or less since the hub started (rates are in memory)."""
    callbacks: int
    """Callbacks answered over it, every outcome."""
    per_minute: float | None
    """``callbacks`` a minute (None over less than a second)."""
    by_outcome: dict[str, int]
    """Callbacks by outcome: accepted, rejected, unavailable, unauthorized, disconnected."""
    by_provider: dict[str, int]


class PullStatus(msgspec.Struct, frozen=True):
    provider: str
    configured: bool
    """Its credentials are configured: the hub polls it."""
    last_poll: str | None
    """When its last poll's answer came (ISO-8601, UTC; None: never polled)."""
    outcome: str | None
    """What the last poll said: ``items``, ``nothing_new``, ``retry_later``,
    ``credentials_refused``, ``rate_limited``, ``request_refused``, ``unreadable``,
    ``journal_unavailable``."""
    reason: str | None
    last_success: str | None
    newest_item: str | None
    """The provider's time of the newest item polled."""
    items: int
    """Items polled and journaled, in all."""
    failures: int
    """Polls failed in a row."""
    next_poll: str | None
    cursor: str
    """Where the source is, in a few words."""


class Status(msgspec.Struct, frozen=True):
    indexed_up_to: int
    """The journal's ``seq`` up to which the pipeline worker has processed every event."""
    forwarding: bool
    """A broker is configured: events go on from the journal."""
    backlog_events: int
    """Events journaled and not yet forwarded (0 when forwarding is off)."""
    oldest_unforwarded_age_seconds: float | None
    """How long the oldest of them has waited (None: none waits)."""
    journal: JournalStatus
    worker: WorkerStatus
    broker: BrokerStatus
    shared_index: SharedIndexStatus
    quarantine: QuarantineStatus
    rates: dict[str, RateStatus]
    """Callbacks over the last minute and the last 15 minutes, from the hub's own counter."""
    pull: list[PullStatus] = []
    """Each pull source (``hub.pull``), as ``hub pull status`` shows it."""


@dataclass(frozen=True)
class _Files:
    """What the files say, read in one thread."""

    after: store.After
    last_seq: int
    size: int
    indexed: int
    progress: progress.Progress | None
    waiting: int
    backlog: backlog.Backlog
    pull: list[pull_sources.Status]


def _read(settings: Settings, forwarding: bool) -> _Files:
    journal_path = settings.data_dir / store.JOURNAL_FILE
    exists = journal_path.exists()
    return _Files(
        after=store.after(journal_path, 0),
        last_seq=store.last_seq(journal_path) if exists else 0,
        size=store.size_on_disk(journal_path),
        indexed=index.read(settings.data_dir).cursor,
        progress=progress.read(settings.data_dir),
        waiting=store.quarantine_waiting(journal_path) if exists else 0,
        backlog=backlog.of(settings.data_dir, journal_path, forwarding=forwarding),
        pull=pull_sources.statuses(settings),
    )


async def current(app: web.Application, settings: Settings) -> Status:
    """The hub's status now (what ``GET /api/v1/status`` sends, and the console's overview
    shows), its files read in a thread."""
    journal = app[JOURNAL]
    forwarder = app.get(FORWARDER)
    # a broker configured, or the sink a test gave the inline worker
    forwarding = backlog.forwarding(settings) or (
        forwarder is not None and forwarder.sink is not None
    )
    files = await offloop.read(_read, settings, forwarding)
    now = time.time()
    connected = files.progress.broker_connected if files.progress is not None else None
    if forwarder is not None and forwarder.sink is not None:
        connected = forwarder.sink.ready  # the sink's own word, in this process
    shared = settings.index_url is not None
    index_connected = files.progress.index_connected if files.progress is not None else None
    if forwarder is not None and forwarder.shared_index:
        index_connected = forwarder.progress.index_connected  # the inline worker's own word
    sampled = app[rates.RATES]
    return Status(
        indexed_up_to=files.indexed,
        forwarding=forwarding,
        backlog_events=files.backlog.events,
        oldest_unforwarded_age_seconds=files.backlog.age(now),
        journal=JournalStatus(
            ready=journal.ready,
            trouble=journal.trouble,
            size_bytes=files.size,
            last_seq=files.last_seq,
            events_held=files.after.events,
            oldest_event_age_seconds=(
                max(now - files.after.first_received_at, 0.0)
                if files.after.first_received_at is not None
                else None
            ),
        ),
        worker=WorkerStatus(
            runs="inline" if forwarder is not None else "process",
            indexed_up_to=files.indexed,
            lag_events=max(files.last_seq - files.indexed, 0),
        ),
        broker=BrokerStatus(
            configured=forwarding,
            connected=connected if forwarding else None,
            forwarded_up_to=files.progress.cursor if files.progress is not None else 0,
        ),
        shared_index=SharedIndexStatus(
            configured=shared,
            connected=index_connected if shared else None,
            waiting_events=max(files.last_seq - files.indexed, 0) if shared else 0,
        ),
        quarantine=QuarantineStatus(waiting=files.waiting),
        rates={name: _rate(sampled.over(s)) for name, s in RATE_WINDOWS.items()},
        pull=[msgspec.convert(p.as_json(), PullStatus) for p in files.pull],
    )


def register(api: Api, settings: Settings) -> None:
    api.contexts.append(rates.sampling)

    @api.operation(
        "GET",
        "/status",
        "The journal, the pipeline worker, the broker, the shared index, the quarantine, the"
        " callbacks' rates and the pull sources",
        responses={200: ("The status", Status)},
    )
    async def get_status(request: web.Request) -> web.Response:
        return json_response(await current(request.app, settings))


def _rate(rate: rates.Rate) -> RateStatus:
    return RateStatus(
        window_seconds=round(rate.window_seconds, 3),
        callbacks=rate.callbacks,
        per_minute=rate.per_minute,
        by_outcome=rate.by_outcome,
        by_provider=rate.by_provider,
    )
