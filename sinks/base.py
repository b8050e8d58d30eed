"""The sink contract: where the forwarder sends journaled events.

A sink is two async methods. ``publish`` returns only when every envelope it was given is safe
(confirmed by the broker); otherwise it raises :class:`core.errors.SinkUnavailable`, whose
``done`` says how many leading envelopes were confirmed all the same.

``already_published`` says, of envelopes the forwarder had in flight when a crash or a lost
connection interrupted it, which ones are at the destination already (a sink that cannot know
returns an empty set: they are sent again; None: it should have known and could not).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from core.models import Envelope


class Sink(Protocol):
    async def publish(self, envelopes: Sequence[Envelope]) -> None: ...

    async def already_published(
        self, envelopes: Sequence[Envelope], *, since: float | None = None
    ) -> set[str] | None:
        """The ids of ``envelopes`` that are at the destination already (bounded in time);
        ``since``: a wall-clock time before which none of them was sent (None: not known)."""
        ...

    async def close(self) -> None: ...

    @property
    def ready(self) -> bool:
        """Whether ``publish`` can be expected to succeed now."""
        ...
