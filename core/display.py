"""An event in one line, for a person (``hub tail``, ``hub subscribe``)."""

from __future__ import annotations

from core.models import Event


def describe(event: Event) -> str:
    """One line for a person: when, routing key, who, what."""
    d = event.data
    who = d.recipient or d.sender or "-"
    what = d.text if d.text is not None else (d.error.meaning if d.error else None) or ""
    ref = d.message_id or d.related_message_id or "-"
    return f"{event.time:%Y-%m-%d %H:%M:%S}Z  {event.routing_key:<40} {ref:<14} {who:<16} {what}"
