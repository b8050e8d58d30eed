"""``hub journal stats``: size, backlogs (for the broker, for the pipeline worker) and the age of
their oldest events, duplicates, quarantine."""

from __future__ import annotations

import argparse
import time
from typing import Any

import orjson

from hub import backlog, disk, journaled
from hub.cli.common import journal_path
from hub.settings import Settings


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    journal = commands.add_parser("journal", help="the local journal")
    journal_commands = journal.add_subparsers(required=True, metavar="COMMAND")
    journal_stats = journal_commands.add_parser("stats", help="backlog, duplicates, quarantine")
    journal_stats.add_argument("--json", action="store_true")
    journal_stats.set_defaults(run=journal_stats_command)


def journal_stats_command(args: argparse.Namespace) -> int:
    settings = Settings()
    path = journal_path(settings)
    if path is None:
        return 1
    stats = journaled.counts(settings.data_dir)
    # the same backlogs as /metrics: without a broker nothing is to be forwarded
    now = time.time()
    waiting = backlog.of(settings.data_dir, path, forwarding=backlog.forwarding(settings))
    behind = backlog.unprocessed(settings.data_dir, path)
    doc: dict[str, Any] = {
        "path": str(path),
        "bytes": sum(p.stat().st_size for p in path.parent.glob(path.name + "*")),
        "worker_bytes": disk.worker_bytes(settings.data_dir),
        "events": stats.events,
        "forwarding": waiting.forwarding,
        "unforwarded": waiting.events,
        "oldest_unforwarded_age_seconds": _rounded(waiting.age(now)),
        "unprocessed": behind.events,
        "oldest_unprocessed_age_seconds": _rounded(behind.age(now)),
        "duplicates": stats.duplicates,
        "quarantined": stats.quarantined,
    }
    if args.json:
        print(orjson.dumps(doc).decode())
    else:
        doc["forwarding"] = "on" if waiting.forwarding else "off (no broker)"
        for key, value in doc.items():
            print(f"{key:<32} {NONE_WAITS if value is None else value}")
    return 0


NONE_WAITS = "- (none waits)"
"""An age, in the text output, when no event waits (``null`` in the JSON)."""


def _rounded(age: float | None) -> float | None:
    return round(age, 3) if age is not None else None
