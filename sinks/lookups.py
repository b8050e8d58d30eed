"""What the read model's lookups take and the one rule they share, for both indexes: the
worker's local file (``sinks.index``) and the shared one (``sinks.index_pg``), which know
nothing of each other but must answer alike.

- :class:`Filters` (with :class:`Party`): what events must match, as ``hub.lookup`` reads a
  query string;
- :func:`current`: a message's state now, from its timeline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar


@dataclass(frozen=True, slots=True)
class Party:
    """A number (or an address) as the parsers store it, looked for as sender and recipient."""

    value: str
    providers: tuple[str, ...] | None = None
    """Only in events of these providers (None: any): the form some parsers give a number."""


@dataclass(frozen=True, slots=True)
class Filters:
    """What events must match (None or empty: anything)."""

    provider: str | None = None
    channel: str | None = None
    kind: str | None = None
    state: str | None = None
    failure: str | None = None
    message_id: str | None = None
    reference: str | None = None
    parties: tuple[Party, ...] = ()
    """The sender or the recipient is one of these."""
    since: float | None = None
    """The event's time (the provider's), epoch seconds: at or after."""
    until: float | None = None
    """... before."""
    received_since: float | None = None
    """The reception time, epoch seconds: at or after."""
    received_until: float | None = None
    """... before."""


class Stepped(Protocol):
    """One event of a message's timeline, as either index gives it."""

    @property
    def kind(self) -> str: ...
    @property
    def final(self) -> bool: ...


S = TypeVar("S", bound=Stepped)


def current(timeline: Sequence[S]) -> S | None:
    """A message's state now, from its timeline in the provider's time (then arrival order):
    its latest event, but a final one is never replaced by one that is not (a status arriving
    late, out of order); delivery reports first: a click or an open does not change whether it
    was delivered."""
    deliveries = [s for s in timeline if s.kind == "delivery"] or list(timeline)
    finals = [s for s in deliveries if s.final] or deliveries
    return finals[-1] if finals else None


@dataclass(frozen=True, slots=True)
class Message(Generic[S]):
    """A message (provider and provider's message id) as an index knows it, its steps of that
    index's kind (``sinks.index.Step``, ``sinks.index_pg.Step``)."""

    provider: str
    message_id: str
    timeline: list[S]
    """Its events in the provider's time (then arrival order)."""
    replies: list[S]
    """Events answering it (their ``related_message_id`` is its id), in the provider's time."""
    answers: str | None
    """For a reply: the provider's id of the message it answers."""

    @property
    def current(self) -> S | None:
        """Its state now (:func:`current`: a final state is never replaced by a later one that
        is not)."""
        return current(self.timeline)
