"""The journal's checkpoint thread: copies committed WAL frames into the database now and then,
on a connection of its own, off the writer.

A checkpoint is a sync of its own; run here (PASSIVE: it never waits for, nor blocks, a commit)
it never holds up a commit. SQLite's own checkpoint at the commit that passes
``wal_autocheckpoint`` pages finishes one when commits keep coming.
"""

from __future__ import annotations

import sqlite3
import threading
from contextlib import closing, suppress
from pathlib import Path

CHECKPOINT_INTERVAL = 0.2
"""Seconds between two checkpoints of the checkpointer thread (PASSIVE: they never wait for,
nor block, a commit)."""


class Checkpointer:
    """The thread, from :meth:`start` to :meth:`stop`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._checkpoints, name="journal-checkpoints", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stops the thread and waits for it (a checkpoint under way finishes)."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None

    def _checkpoints(self) -> None:
        with closing(sqlite3.connect(self.path, isolation_level=None)) as conn:
            conn.execute("PRAGMA busy_timeout=5000")
            while not self._stop.wait(CHECKPOINT_INTERVAL):
                with suppress(sqlite3.Error):  # busy or full: the next round tries again
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
