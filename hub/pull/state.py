"""A pull source's state on disk: ``pull/<provider>.json`` in the data directory.

It holds the source's cursor (``hub.pull.source``) and what ``hub pull status`` shows of its
last poll. The poller writes it after each poll, once the events read are durable in the
journal: written whole to a file beside it, synced, renamed over it, the directory synced, so
that a crash leaves the old state or the new one, never a mix. ``pull/<provider>.lock`` keeps
two pollers of one source apart (the hub's task and ``hub pull once``): each poll reads the
state again under the lock, so the later one starts from the earlier one's cursor.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import orjson

from core.vocabulary import JsonValue

FOLDER = "pull"


@dataclass
class State:
    cursor: dict[str, JsonValue] = field(default_factory=dict)
    last_poll: str | None = None
    """When the last poll's answer came (ISO-8601, UTC), whatever it said."""
    last_call: float = 0.0
    """Epoch seconds of the last request sent (the provider's minimum spacing counts from it)."""
    outcome: str = ""
    """The last poll's outcome (``items``, ``nothing_new``, ``retry_later``..., ``unreadable``,
    ``journal_unavailable``) and its reason."""
    reason: str = ""
    last_success: str | None = None
    """When an answer last came that the source understood and made durable."""
    newest_item: str | None = None
    """The provider's time of the newest item read so far."""
    items: int = 0
    """Items journaled by polling, in all."""
    failures: int = 0
    """Polls failed in a row (the back-off's exponent)."""
    next_poll: str | None = None
    unreadable: str = ""
    """The SHA-256 of the last answer quarantined as unreadable: the same bytes again are
    counted, not kept again (until an answer is understood)."""


def path_of(data_dir: Path, name: str) -> Path:
    return data_dir / FOLDER / f"{name}.json"


def load(data_dir: Path, name: str) -> State:
    """The state on disk; a fresh one when there is none (or it cannot be read: a torn file
    cannot be, it is renamed in whole)."""
    try:
        doc = orjson.loads(path_of(data_dir, name).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return State()
    if not isinstance(doc, dict):
        return State()
    known = {f.name for f in fields(State)}
    try:
        return State(**{k: v for k, v in doc.items() if k in known})
    except TypeError:
        return State()


def save(data_dir: Path, name: str, state: State) -> None:
    """Writes ``state`` atomically and durably (see the module's docstring)."""
    path = path_of(data_dir, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".json.tmp")
    with open(temporary, "wb") as out:
        out.write(orjson.dumps(asdict(state), option=orjson.OPT_INDENT_2))
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


@contextlib.asynccontextmanager
async def locked(data_dir: Path, name: str) -> AsyncIterator[None]:
    """Holds the source's lock (an ``flock`` on ``pull/<name>.lock``), waiting for it without
    blocking the loop."""
    folder = data_dir / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                await asyncio.sleep(0.05)  # another process polls this source: its poll is short
        yield
    finally:
        os.close(fd)  # releases the lock
