"""What several commands share: the journal's path, and times given on the command line."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

from hub.settings import Settings
from sinks import journal as journal_store


def journal_path(settings: Settings) -> Path | None:
    """The journal in ``HUB_DATA_DIR``, or None (and a line saying so) when there is none."""
    path = settings.data_dir / journal_store.JOURNAL_FILE
    if not path.exists():
        print(f"no journal at {path} yet: has the hub run here?", file=sys.stderr)
        return None
    return path


def moment(text: str) -> float:
    """An ISO 8601 time (UTC when no offset is given) as epoch seconds."""
    when = datetime.fromisoformat(text)
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
