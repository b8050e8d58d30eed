"""What an index keeps of a journaled event beside its body: the read model's columns, taken
from its CloudEvents document (one definition for the worker's local index, ``sinks.index``,
and the shared one, ``sinks.index_pg``, which know nothing of each other)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

Journaled = tuple[int, str, float, bytes]
"""An event as the journal gives it to the worker: ``seq``, event id, reception time (epoch
seconds), CloudEvents JSON."""

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


def looked_up(doc: dict[str, Any], data: dict[str, Any]) -> tuple[Any, ...]:
    """An event's :data:`COLUMNS`, from its CloudEvents document and its ``data`` (``time`` in
    epoch seconds, ``final`` 0 or 1)."""
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
