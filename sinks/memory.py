"""An in-memory sink for tests: keeps what it is given, or fails on demand."""

from __future__ import annotations

from collections.abc import Sequence

from hub.errors import SinkUnavailable
from hub.models import Event


class MemorySink:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.failing = False
        self.closed = False

    async def publish(self, events: Sequence[Event]) -> None:
        if self.failing:
            raise SinkUnavailable("memory sink set to fail", reason="test_failure")
        self.events.extend(events)

    async def close(self) -> None:
        self.closed = True

    @property
    def ready(self) -> bool:
        return not self.failing and not self.closed
