"""An in-memory sink for tests: keeps what it is given, or fails on demand."""

from __future__ import annotations

from collections.abc import Sequence

from core.errors import SinkUnavailable
from core.models import Envelope, Event


class MemorySink:
    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []
        self.failing = False
        self.closed = False

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        if self.failing:
            raise SinkUnavailable("memory sink set to fail", reason="test_failure")
        self.envelopes.extend(envelopes)

    async def already_published(
        self, envelopes: Sequence[Envelope], *, since: float | None = None
    ) -> set[str] | None:
        if self.failing:
            raise SinkUnavailable("memory sink set to fail", reason="test_failure")
        kept = {e.id for e in self.envelopes}
        return {e.id for e in envelopes if e.id in kept}

    @property
    def events(self) -> list[Event]:
        return [Event.from_json(e.body) for e in self.envelopes]

    async def close(self) -> None:
        self.closed = True

    @property
    def ready(self) -> bool:
        return not self.failing and not self.closed
