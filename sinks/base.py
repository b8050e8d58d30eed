"""The sink contract: where events go once parsed.

A sink is two async methods. ``publish`` returns only when every event it was given is safe
(committed to disk, or confirmed by the broker); otherwise it raises
:class:`hub.errors.SinkUnavailable` and the provider is told to retry.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from hub.models import Event


class Sink(Protocol):
    async def publish(self, events: Sequence[Event]) -> None: ...

    async def close(self) -> None: ...

    @property
    def ready(self) -> bool:
        """Whether ``publish`` can be expected to succeed now (for the readiness probe)."""
        ...
