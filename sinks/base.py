"""The sink contract: where the forwarder sends journaled events.

A sink is two async methods. ``publish`` returns only when every envelope it was given is safe
(confirmed by the broker); otherwise it raises :class:`core.errors.SinkUnavailable`, whose
``done`` says how many leading envelopes were confirmed all the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from core.models import Envelope


class Sink(Protocol):
    async def publish(self, envelopes: Sequence[Envelope]) -> None: ...

    async def close(self) -> None: ...

    @property
    def ready(self) -> bool:
        """Whether ``publish`` can be expected to succeed now."""
        ...
