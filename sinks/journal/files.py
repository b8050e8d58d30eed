"""The journal's files on disk: that they are still the ones it opened, their sizes, how a cap
on their total (and on other files it counts) is shared out, room on the file system, and a
copy of the open file.

SQLite would go on writing to deleted or replaced files, and every acknowledgement after that
would be lost at the next start: the journal asks :meth:`Files.lost` after each commit, on the
loop, before answering (a stat a file; the commit's sync costs far more)."""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sinks.journal.schema import FILES

HEADROOM = 1 << 20
"""Free bytes its file system must have again before a journal that could not write tries."""
SHM_CHUNK = 32768
"""The WAL index grows by this much for every 4096 frames of WAL."""
FRAME_HEADER = 24
"""Bytes of a WAL frame besides its page."""

Identity = tuple[int, int]
"""A file's device and inode."""


def size_on_disk(path: Path) -> int:
    """Bytes the journal at ``path`` takes: the database, its WAL and the WAL's index."""
    total = 0
    for suffix in FILES:
        with suppress(FileNotFoundError):
            total += os.stat(f"{path}{suffix}").st_size
    return total


class Files:
    """The database, its WAL and the WAL's index, as the journal opened them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._known: dict[str, Identity | None] = {}

    def remember(self) -> None:
        """Takes the files as they are now as the journal's own."""
        self._known = self._identities()

    def lost(self) -> str | None:
        """The name of a journal file that is not the one open any more (deleted, replaced), if
        one is. A file created since the journal was opened becomes one of its own."""
        for suffix, now in self._identities().items():
            known = self._known.get(suffix)
            if known is None:
                self._known[suffix] = now
            elif now != known:
                return f"{self.path.name}{suffix}"
        return None

    def moved(self) -> bool:
        """A file it knows is not where it was (from any thread; changes nothing)."""
        return any(
            known is not None and self._identity(suffix) != known
            for suffix, known in list(self._known.items())
        )

    def size(self, suffix: str) -> int:
        try:
            return os.stat(f"{self.path}{suffix}").st_size
        except FileNotFoundError:
            return 0

    def has_headroom(self) -> bool:
        """The file system has ``HEADROOM`` bytes free."""
        fs = os.statvfs(self.path.parent)
        return fs.f_bavail * fs.f_frsize >= HEADROOM

    def salvage(self, conn: sqlite3.Connection) -> Path:
        """Copies what the open database holds beside its path (``<name>.salvaged-<time>``)."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        copy_path = self.path.with_name(f"{self.path.name}.salvaged-{stamp}")
        with closing(sqlite3.connect(copy_path)) as copy:
            conn.backup(copy)
        return copy_path

    def _identity(self, suffix: str) -> Identity | None:
        try:
            st = os.stat(f"{self.path}{suffix}")
        except FileNotFoundError:
            return None
        return (st.st_dev, st.st_ino)

    def _identities(self) -> dict[str, Identity | None]:
        return {suffix: self._identity(suffix) for suffix in FILES}


@dataclass(frozen=True, slots=True)
class Cap:
    """``max_bytes`` shared out: a quarter (at most 8 MiB) for the WAL, checked before each
    commit; its index; the rest for the database, SQLite's ``max_page_count``, less what other
    files the cap counts take (:meth:`pages_beside`)."""

    page_size: int
    wal_budget: int
    pages: int
    """The database's pages when nothing else counts."""

    @classmethod
    def of(cls, max_bytes: int, page_size: int) -> Cap:
        frame = page_size + FRAME_HEADER
        wal = min(max_bytes // 4, 8 << 20)
        shm = SHM_CHUNK * (1 + wal // frame // 4096)
        return cls(page_size, wal, max((max_bytes - wal - shm) // page_size, 1))

    def pages_beside(self, others: int) -> int:
        """The database's pages when other files the cap counts take ``others`` bytes."""
        return max(self.pages - -(-others // self.page_size), 1)

    @staticmethod
    def limit(conn: sqlite3.Connection, pages: int) -> None:
        """The database may grow to ``pages`` (SQLite keeps its current size if that is more:
        it takes no new page, and reuses its free ones)."""
        conn.execute(f"PRAGMA max_page_count={pages}")

    @property
    def wal_frames(self) -> int:
        """Frames (pages) the WAL may hold."""
        return self.wal_budget // (self.page_size + FRAME_HEADER)

    def apply(self, conn: sqlite3.Connection) -> None:
        conn.execute(f"PRAGMA max_page_count={self.pages}")
        conn.execute(f"PRAGMA journal_size_limit={self.wal_budget}")
        conn.execute(f"PRAGMA wal_autocheckpoint={max(self.wal_frames // 2, 1)}")

    def fits(self, wal_size: int, frames: int) -> bool:
        """``frames`` more pages keep the WAL within its budget."""
        return wal_size + frames * (self.page_size + FRAME_HEADER) <= self.wal_budget

    @staticmethod
    def pages_left(conn: sqlite3.Connection) -> int:
        """Pages the database may still take under ``max_page_count`` (free ones included)."""
        (count,) = conn.execute("PRAGMA page_count").fetchone()
        (free,) = conn.execute("PRAGMA freelist_count").fetchone()
        (most,) = conn.execute("PRAGMA max_page_count").fetchone()
        return int(most - count + free)
