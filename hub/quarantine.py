"""Replaying the requests the parsers refused, once the parsers are fixed, and dropping them
(``hub quarantine``).

A refused request is kept whole in the journal (method, query, body, headers, time, reason), and
so is a pull source's answer no reader understood (``hub.pull``). ``replay`` runs it through
today's parser (a polling method's reader for such an answer): the events it gives are
journaled (and forwarded by the running hub) like any callback's, and the request is marked
replayed. ``drop`` deletes
requests by number (input no parser will ever read, once looked at); ``purge`` deletes every
replayed one, which the hub's retention (``HUB_QUARANTINE_RETENTION``) does too once they have
been replayed that long. Each writes through a journal of its own, beside the running hub's;
inside the hub (the operator's API, ``hub.jobs``) :func:`replay_entry` writes through the hub's
own journal.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import datetime

from core.errors import HubError, PayloadError
from core.models import Event, Provider, RawRequest
from hub import intake
from hub.pull import sources as pull_sources
from hub.settings import Settings
from parsers import REGISTRY
from sinks import journal as store
from sinks.journal import Journal, Quarantined


@dataclass(frozen=True)
class Outcome:
    number: int
    events: int
    """Events journaled (a retry of events already there among them: the worker leaves it out)."""
    refused: str | None
    """The parser's reason when it still refuses the request."""


def request_of(item: Quarantined) -> RawRequest:
    entry = item.entry
    return RawRequest(
        provider=Provider(entry.provider),
        callback=entry.callback,
        method=entry.method,
        query=entry.query,
        body=entry.body,
        content_type=entry.content_type,
        received_at=datetime.fromisoformat(entry.received_at),
    )


async def replay(settings: Settings, numbers: list[int] | None = None) -> list[Outcome]:
    """Replays the given quarantined requests (all not yet replayed when ``numbers`` is None)."""
    path = settings.data_dir / store.JOURNAL_FILE
    items = (
        [i for n in numbers for i in store.quarantined(path, seq=n)]
        if numbers
        else store.quarantined(path)
    )
    journal = Journal.open(settings.data_dir)
    try:
        return [await replay_entry(journal, item) for item in items]
    finally:
        journal.close()  # on the loop: it commits what waits


async def replay_entry(journal: Journal, item: Quarantined) -> Outcome:
    """Runs one quarantined request through today's parser: its events appended to ``journal``
    and the request marked replayed, or the reason it is still refused (a parser's bug on it
    among them). The journal's own failure (:class:`SinkUnavailable`) is raised: no other
    request can be replayed either."""
    try:
        raw = request_of(item)
    except ValueError:  # an unknown provider, an unreadable time: a row of another version
        return Outcome(item.seq, 0, "unreadable_entry")
    try:
        events = _events(raw)
        await intake.append(journal, raw, events)
    except PayloadError as exc:
        return Outcome(item.seq, 0, exc.reason)
    await journal.mark_replayed(item.seq, time.time())
    return Outcome(item.seq, len(events), None)


def _events(raw: RawRequest) -> list[Event]:
    """What today's parser makes of a quarantined request: a callback's parser, or for a pull
    source's answer (its callback names a polling method) that method's reader, every item's
    events (read again, they have the same ids: the pipeline worker marks those it has)."""
    read = _PULL_READERS.get((raw.provider, raw.callback))
    if read is None:
        return intake.parse(REGISTRY[raw.provider], raw)
    try:
        page = read(raw)
    except HubError:
        raise
    except Exception as exc:
        raise PayloadError("reader error", reason=intake.PARSER_ERROR) from exc
    return [event for item in page.items for event in item.events]


_PULL_READERS = pull_sources.readers()


async def drop(settings: Settings, numbers: list[int]) -> list[int]:
    """Deletes quarantined requests, replayed or not; the numbers of those that were there."""
    journal = Journal.open(settings.data_dir)
    try:
        return await journal.drop_quarantined(numbers)
    finally:
        journal.close()


async def purge(settings: Settings) -> int:
    """Deletes every replayed request; how many."""
    journal = Journal.open(settings.data_dir)
    try:
        return await journal.prune_quarantine(math.inf)
    finally:
        journal.close()
