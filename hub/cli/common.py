"""What several commands share: the journal's path, times and patterns given on the command
line, the configuration's errors said in one line each, whether the reader of a command
that follows (``hub tail | head -1``) has left, and the broker clients' logs kept quiet."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import logging
import select
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from core.topics import check_pattern
from hub.lookup import TIME_FORMS, when
from hub.settings import Settings
from sinks import journal as journal_store

BROKER_CLIENTS = ("aiormq", "aio_pika")


def quiet_broker_clients() -> None:
    """The hub's own lines say when the broker is lost and when it is back, one each; the
    client libraries would add an ERROR line (and a traceback) and an INFO line at every try,
    a second apart, while it is away."""
    for library in BROKER_CLIENTS:
        logging.getLogger(library).setLevel(logging.CRITICAL)


SHARED_INDEX_MODULES = ("psycopg", "psycopg_pool", "alembic")
"""The ``postgres`` extra's packages, which the shared index (``HUB_INDEX_URL``) needs."""


def shared_index_missing(settings: Settings) -> bool:
    """With ``HUB_INDEX_URL`` set and the ``postgres`` extra not installed: says so in one
    line (True), rather than a worker that fails at each start (looked up, not imported)."""
    if settings.index_url is None:
        return False
    for name in SHARED_INDEX_MODULES:
        try:
            found = importlib.util.find_spec(name) is not None
        except ValueError:  # in sys.modules without a spec (blocked)
            found = False
        if not found:
            print(
                "hub: HUB_INDEX_URL needs the postgres extra: pip install 'callback-hub[postgres]'",
                file=sys.stderr,
            )
            return True
    return False


def journal_path(settings: Settings) -> Path | None:
    """The journal in ``HUB_DATA_DIR``, or None (and a line saying so) when there is none."""
    path = settings.data_dir / journal_store.JOURNAL_FILE
    if not path.exists():
        print(f"no journal at {path} yet: has the hub run here?", file=sys.stderr)
        return None
    return path


__all__ = ["TIME_FORMS", "when"]  # (with the functions below) the times the API reads too


def moment(text: str) -> float:
    """:func:`when` (``hub.lookup``'s) as epoch seconds, for ``argparse`` (a clear error for
    anything else)."""
    try:
        return when(text).timestamp()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected {TIME_FORMS}") from None


def pattern(text: str) -> str:
    """A routing pattern (``core.topics.check_pattern``), for ``argparse``."""
    try:
        return check_pattern(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


_PRIVATE = (
    "HUB_SECRET_",
    "HUB_EVENTS_TOKEN",
    "HUB_RABBITMQ_URL",
    "HUB_INDEX_URL",
    "HUB_SMSMODE_ACCESS_TOKEN",
    "HUB_ECALL_USERNAME",
    "HUB_ECALL_PASSWORD",
    "HUB_ECAMPAIGN_PASSWORD",
    "HUB_DMC_SERVICE_PASSWORD",
)
"""Variables whose values are never repeated back (they hold secrets or passwords)."""


def configuration_errors(exc: ValidationError) -> list[str]:
    """One line per variable the settings refuse, naming it (and its value, unless private)."""
    lines = []
    for error in exc.errors():
        message = error["msg"].removeprefix("Value error, ")
        if not error["loc"]:  # a check across variables: its message names them
            lines.append(message)
            continue
        name = f"HUB_{str(error['loc'][0]).upper()}"
        given = "" if name.startswith(_PRIVATE) else f" (got {error['input']!r})"
        lines.append(f"{name}: {message}{given}")
    return lines


def reader_gone() -> bool:
    """True when standard output is a pipe (or socket) whose reader has left: ``| head -1`` has
    what it wanted, and a command waiting for more to print would otherwise wait until its next
    line, which may never come."""
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError):  # no real file behind it
        return False
    poller = select.poll()
    poller.register(fd, 0)  # POLLERR and POLLHUP are reported whatever is asked
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))


READER_CHECK = 0.5
"""Seconds between two looks at whether a following command's reader has left."""


async def while_read(work: Coroutine[Any, Any, int]) -> int:
    """Awaits ``work`` (a command that follows: it may wait for ever) until it ends, or until
    the reader of its output leaves (:func:`reader_gone`): then it is cancelled, and the
    command ends quietly with exit status 0, as if a write had failed. ``work`` runs in the
    calling task, so Ctrl-C and SIGTERM reach it as before."""
    task = asyncio.current_task()
    assert task is not None
    gone = asyncio.Event()

    async def watch() -> None:
        while not reader_gone():  # noqa: ASYNC110 - no event says a reader has left
            await asyncio.sleep(READER_CHECK)
        gone.set()
        task.cancel()

    watcher = asyncio.ensure_future(watch())
    try:
        return await work
    except asyncio.CancelledError:
        if gone.is_set():
            return 0
        raise
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
