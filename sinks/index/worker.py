"""The worker's writes to its index: each journaled event indexed once, in ``seq`` order, with
its duplicate mark, the counts and the cursor in the same transaction; old rows refilled with
the read model's columns; old events pruned."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from sinks.index.counts import EVENT_LABELS, Counts, marked_duplicates
from sinks.index.schema import INDEX_FILE, connect, transaction

Journaled = tuple[int, str, float, bytes]
"""An event as the journal gives it to the worker: ``seq``, event id, reception time (epoch
seconds), CloudEvents JSON."""

_CHUNK = 400
"""Ids per lookup statement (within SQLite's bound parameters)."""

COLUMNS = (
    "message_id",
    "reference",
    "kind",
    "state",
    "time",
    "channel",
    "failure",
    "final",
    "related_message_id",
    "sender",
    "recipient",
)
"""What the read model keeps of an event, beside its ``seq``, id, provider, reception time and
duplicate mark (:func:`looked_up`, in this order)."""
_INSERT = (
    f"INSERT OR REPLACE INTO indexed (seq, id, provider, received_at, duplicate,"  # noqa: S608
    f" {', '.join(COLUMNS)}) VALUES ({', '.join('?' * (5 + len(COLUMNS)))})"
)
_REFILL = f"UPDATE indexed SET {', '.join(f'{c} = ?' for c in COLUMNS)} WHERE seq = ?"  # noqa: S608


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
        events = [e for e in events if e[0] > self.cursor]
        if not events:
            return []
        latest = self._latest({e[1] for e in events})
        counts = Counts(dict(self.counts.events), dict(self.counts.duplicates))
        rows: list[tuple[Any, ...]] = []
        flags: list[bool] = []
        for seq, id_, received_at, body in events:
            doc = orjson.loads(body)
            data = doc.get("data") or {}
            provider = str(data.get("provider", ""))
            last = latest.get(id_)
            duplicate = last is not None and last >= received_at - window
            if duplicate:
                counts.duplicates[provider] = counts.duplicates.get(provider, 0) + 1
            else:
                latest[id_] = received_at  # a later copy in the same batch is a duplicate
                key = tuple(str(data.get(label) or "") for label in EVENT_LABELS)
                counts.events[key] = counts.events.get(key, 0) + 1
            flags.append(duplicate)
            rows.append((seq, id_, provider, received_at, int(duplicate), *looked_up(doc, data)))
        cursor = events[-1][0]
        with transaction(self._conn):
            self._conn.executemany(_INSERT, rows)
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


def looked_up(doc: dict[str, Any], data: dict[str, Any]) -> tuple[Any, ...]:
    """An event's :data:`COLUMNS`, from its CloudEvents document and its ``data``."""
    when = doc.get("time")
    final = data.get("final")
    return (
        data.get("message_id"),
        data.get("reference"),
        str(data.get("kind", "")),
        str(data.get("state", "")),
        _epoch(when) if isinstance(when, str) else 0.0,
        data.get("channel"),
        data.get("failure"),
        None if final is None else int(bool(final)),
        data.get("related_message_id"),
        data.get("sender"),
        data.get("recipient"),
    )


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
