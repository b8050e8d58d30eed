"""The worker's writes to its index: each journaled event indexed once, in ``seq`` order, with
its duplicate mark, the counts (by label and by minute) and the cursor in the same
transaction; old rows refilled with the read model's columns; old events pruned."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from sinks.eventrow import COLUMNS, Journaled, looked_up
from sinks.index.counts import EVENT_LABELS, Counts, marked_duplicates
from sinks.index.schema import INDEX_FILE, connect, transaction

__all__ = ["COLUMNS", "Entry", "IndexFile", "Journaled", "Prepared", "entry", "looked_up"]

_STATE = EVENT_LABELS.index("state")
_CHUNK = 400
"""Ids per lookup statement (within SQLite's bound parameters)."""

_INSERT = (
    f"INSERT OR REPLACE INTO indexed (seq, id, provider, received_at, duplicate,"  # noqa: S608
    f" {', '.join(COLUMNS)}) VALUES ({', '.join('?' * (5 + len(COLUMNS)))})"
)
_COUNT_MINUTE = (
    "INSERT INTO minutes (minute, provider, state, count) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (minute, provider, state) DO UPDATE SET count = count + excluded.count"
)
_REFILL = f"UPDATE indexed SET {', '.join(f'{c} = ?' for c in COLUMNS)} WHERE seq = ?"  # noqa: S608


@dataclass(frozen=True, slots=True)
class Entry:
    """One event of a prepared batch."""

    seq: int
    id: str
    received_at: float
    body: bytes
    key: tuple[str, ...]
    """Its labels in the counts (:data:`EVENT_LABELS`: provider first)."""
    duplicate: bool
    """A copy of an event this file has within the window."""
    columns: tuple[Any, ...]
    """Its :data:`COLUMNS`."""


@dataclass(frozen=True, slots=True)
class Prepared:
    """A batch read and decided by :meth:`IndexFile.prepare`, for :meth:`IndexFile.commit`."""

    entries: list[Entry]


def entry(event: Journaled, duplicate: bool) -> Entry:
    """A journaled event read into its labels and columns, with its duplicate mark."""
    seq, id_, received_at, body = event
    doc = orjson.loads(body)
    data = doc.get("data") or {}
    key = tuple(str(data.get(label) or "") for label in EVENT_LABELS)
    return Entry(seq, id_, received_at, body, key, duplicate, looked_up(doc, data))


class IndexFile:
    """The worker's handle on its file (one writer: the worker; one thread at a time)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn = connect(path)
        row = self._conn.execute(
            "SELECT cursor, counts, refill_after, refill_up_to FROM worker"
        ).fetchone()
        self.cursor: int = int(row[0]) if row is not None else 0
        self.counts = Counts.load(row[1]) if row is not None else Counts()
        after, up_to = (int(row[2]), int(row[3])) if row is not None else (0, 0)
        self.refilling: tuple[int, int] | None = (after, up_to) if after < up_to else None
        """Rows with ``seq`` above the first and up to the second lack the read model's columns
        (an index of the first format): the worker gives their bodies to :meth:`refill`."""

    @classmethod
    def open(cls, data_dir: Path) -> IndexFile:
        data_dir.mkdir(parents=True, exist_ok=True)
        return cls(data_dir / INDEX_FILE)

    def process(self, events: Sequence[Journaled], window: float) -> list[bool]:
        """Indexes events that follow the cursor, in ``seq`` order; for each, whether it is a
        duplicate. Moves the cursor past the last of them, in the same transaction."""
        return self.commit(self.prepare(events, window))

    def prepare(self, events: Sequence[Journaled], window: float) -> Prepared:
        """What :meth:`process` would write, not written yet: the events after the cursor, read
        into their columns, each with this file's decision (a duplicate of an earlier copy
        here, within the window). A shared index (``hub.shared_index``) adds its own decision
        before :meth:`commit`."""
        fresh = [e for e in events if e[0] > self.cursor]
        latest = self._latest({e[1] for e in fresh}) if fresh else {}
        entries: list[Entry] = []
        for event in fresh:
            _, id_, received_at, _ = event
            last = latest.get(id_)
            duplicate = last is not None and last >= received_at - window
            if not duplicate:
                latest[id_] = received_at  # a later copy in the same batch is a duplicate
            entries.append(entry(event, duplicate))
        return Prepared(entries)

    def commit(self, prepared: Prepared, elsewhere: frozenset[int] = frozenset()) -> list[bool]:
        """Writes a prepared batch, the events whose ``seq`` is in ``elsewhere`` marked
        duplicate too (another replica had them first), counts and cursor in the same
        transaction; for each event, whether it is a duplicate."""
        entries = [e for e in prepared.entries if e.seq > self.cursor]
        if not entries:
            return []
        counts = Counts(dict(self.counts.events), dict(self.counts.duplicates))
        rows: list[tuple[Any, ...]] = []
        flags: list[bool] = []
        minutes: dict[tuple[int, str, str], int] = {}
        for entry in entries:
            provider = entry.key[0]
            duplicate = entry.duplicate or entry.seq in elsewhere
            if duplicate:
                counts.duplicates[provider] = counts.duplicates.get(provider, 0) + 1
            else:
                counts.events[entry.key] = counts.events.get(entry.key, 0) + 1
                minute = (int(entry.received_at // 60) * 60, provider, entry.key[_STATE])
                minutes[minute] = minutes.get(minute, 0) + 1
            flags.append(duplicate)
            rows.append(
                (entry.seq, entry.id, provider, entry.received_at, int(duplicate), *entry.columns)
            )
        cursor = entries[-1].seq
        with transaction(self._conn):
            self._conn.executemany(_INSERT, rows)
            self._conn.executemany(_COUNT_MINUTE, [(*k, n) for k, n in minutes.items()])
            self._save(cursor, counts)
        self.cursor, self.counts = cursor, counts
        return flags

    def refill(self, events: Sequence[Journaled], up_to: int) -> None:
        """Fills the read model's columns of old rows from their events' bodies (the journal's,
        given by the worker), and marks every row up to ``up_to`` done."""
        if self.refilling is None:
            return
        after, end = self.refilling
        rows = []
        for seq, _, _, body in events:
            if after < seq <= end:
                doc = orjson.loads(body)
                rows.append((*looked_up(doc, doc.get("data") or {}), seq))
        done = min(max(up_to, after), end)
        with transaction(self._conn):
            self._conn.executemany(_REFILL, rows)
            self._conn.execute("UPDATE worker SET refill_after = ?", (done,))
        self.refilling = (done, end) if done < end else None

    def duplicates(self, after: int, up_to: int) -> set[int]:
        """The ``seq`` of the duplicates above ``after`` and up to ``up_to``."""
        return marked_duplicates(self._conn, after, up_to)

    def prune(self, received_before: float, chunk: int = 5000) -> int:
        """Forgets events received before the given time (older than the journal's retention,
        itself at least the deduplication window), ``chunk`` a transaction; how many. Then
        SQLite's statistics of the indexes are made again on a sample (``ANALYZE`` within
        ``analysis_limit``: milliseconds), so that lookups keep choosing the right index as the
        file grows."""
        deleted = 0
        while True:
            with transaction(self._conn):
                count = self._conn.execute(
                    "DELETE FROM indexed WHERE seq IN (SELECT seq FROM indexed"
                    " WHERE received_at < ? ORDER BY seq LIMIT ?)",
                    (received_before, chunk),
                ).rowcount
            deleted += count
            if count < chunk:
                break
        with transaction(self._conn):  # (a row per minute, provider and state: few)
            self._conn.execute(
                "DELETE FROM minutes WHERE minute < ?", (received_before // 60 * 60,)
            )
        self._conn.execute("PRAGMA analysis_limit = 1000")
        self._conn.execute("ANALYZE")
        return deleted

    def close(self) -> None:
        self._conn.close()

    def _latest(self, ids: set[str]) -> dict[str, float]:
        """The last reception of each id among the events indexed and not duplicates."""
        latest: dict[str, float] = {}
        wanted = list(ids)
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            marks = ", ".join("?" * len(chunk))
            latest.update(
                self._conn.execute(
                    f"SELECT id, MAX(received_at) FROM indexed WHERE id IN ({marks})"  # noqa: S608
                    " AND duplicate = 0 GROUP BY id",
                    chunk,
                ).fetchall()
            )
        return latest

    def _save(self, cursor: int, counts: Counts) -> None:
        self._conn.execute(
            "INSERT INTO worker (id, cursor, counts) VALUES (1, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET cursor = excluded.cursor, counts = excluded.counts",
            (cursor, counts.dump()),
        )
