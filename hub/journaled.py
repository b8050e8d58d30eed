"""What a user sees of the journal (``hub tail``, ``hub replay``, ``hub journal stats``): the
events the pipeline worker has processed, its duplicates left out, as the exchange and the
stream get them.

The journal is insert-only and keeps a provider's retries; the worker's index (``sinks.index``)
says which they are. Neither opens the other's file: they are joined here.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sinks import index
from sinks import journal as store
from sinks.journal import Stored


@dataclass(frozen=True, slots=True)
class Page:
    events: list[Stored]
    """The events to show, duplicates left out, in arrival order."""
    after: int
    """The ``seq`` to read the next page after (the last one looked at)."""


CATCH_UP = 2.0
"""Seconds a command waits for the worker to process what the journal holds (it takes
milliseconds while the worker runs): a callback just answered is shown."""


def processed(data_dir: Path) -> int:
    """The ``seq`` up to which the worker processed the journal."""
    return index.read(data_dir).cursor


def caught_up(data_dir: Path, timeout: float = CATCH_UP) -> int:
    """The worker's cursor, once it reached the journal's last event (or after ``timeout``
    seconds: the worker may not run)."""
    last, deadline = store.last_seq(data_dir / store.JOURNAL_FILE), time.monotonic() + timeout
    while (cursor := processed(data_dir)) < last and time.monotonic() < deadline:
        time.sleep(0.05)  # polling a file another process writes
    return cursor


def page(data_dir: Path, *, after: int = 0, limit: int = 1000, **filters: Any) -> Page:
    """The processed events after ``after`` matching the filters (``since``, ``until``,
    ``provider``, ``kind``: see ``sinks.journal.select``); an empty page with ``after``
    unchanged when there is nothing more processed yet."""
    processed = index.read(data_dir).cursor
    rows = [
        r
        for r in store.select(data_dir / store.JOURNAL_FILE, after=after, limit=limit, **filters)
        if r.seq <= processed
    ]
    if not rows:
        return Page([], after)
    duplicates = index.duplicates(data_dir, after, rows[-1].seq)
    return Page([r for r in rows if r.seq not in duplicates], rows[-1].seq)


def pages(data_dir: Path, *, after: int = 0, limit: int = 1000, **filters: Any) -> Iterator[Page]:
    """Every page of processed events after ``after``, read as they are asked for."""
    while (next_page := page(data_dir, after=after, limit=limit, **filters)).after != after:
        yield next_page
        after = next_page.after


@dataclass(frozen=True, slots=True)
class Counts:
    events: int
    """Events in the journal, duplicates left out."""
    duplicates: int
    """Retries recognized: by earlier hubs at the callback, by the worker since."""
    quarantined: int
    last_seq: int


def counts(data_dir: Path) -> Counts:
    stats = store.stats(data_dir / store.JOURNAL_FILE)
    marked = index.read(data_dir).counts.duplicates
    return Counts(
        events=stats.events - index.retained_duplicates(data_dir),
        duplicates=stats.duplicates + sum(marked.values()),
        quarantined=stats.quarantined,
        last_seq=stats.last_seq,
    )
