"""What the hub keeps on disk for events beside the journal, as ``HUB_JOURNAL_MAX_BYTES`` counts
it: the pipeline worker's files (its index, ``sinks.index``; its cursor, ``sinks.progress``),
each a SQLite database with its WAL and the WAL's index. The journal never opens them: it is
told what they take (``Journal.open(also_counted=...)``), asked before each commit."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from sinks.index import INDEX_FILE
from sinks.progress import PROGRESS_FILE

WORKER_FILES = tuple(
    f"{name}{suffix}" for name in (INDEX_FILE, PROGRESS_FILE) for suffix in ("", "-wal", "-shm")
)
"""The worker's files in the data directory (SQLite in WAL mode: database, WAL, WAL index)."""


def worker_bytes(data_dir: Path) -> int:
    """Bytes the pipeline worker's files take now (a file not there takes none)."""
    return worker_files(data_dir)()


def worker_files(data_dir: Path) -> Callable[[], int]:
    """:func:`worker_bytes` of ``data_dir``, its paths made once: a few stats, asked before each
    of the journal's commits (6 stats: 33 µs measured on this loaded 2-core machine, where a
    commit's sync takes hundreds)."""
    paths = [os.fspath(data_dir / name) for name in WORKER_FILES]

    def size() -> int:
        total = 0
        for path in paths:
            try:
                total += os.stat(path).st_size
            except FileNotFoundError:  # not made yet: takes nothing
                continue
        return total

    return size
