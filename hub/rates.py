"""Callbacks per minute over the last minutes, for the operator's status (``/api/v1/status``).

Taken from the hub's own counter of callbacks (``hub_callbacks_total``, by provider and
outcome), sampled every :data:`EVERY` seconds for the last :data:`WINDOW`: a rate is the
difference between now and the oldest sample within the window asked. So it counts every
callback answered, refused ones and wrong secrets too (what an operator looks for when a
provider is misconfigured), and costs nothing on the callbacks' path. The samples are in memory:
after a restart the window starts again from the start (``window_seconds`` says how much of it
there is). For rates kept across restarts, Prometheus scrapes the same counter (``/metrics``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from aiohttp import web

from hub.handlers import RUNTIME
from sinks.metrics import Metrics

EVERY = 10.0
"""Seconds between two samples."""
WINDOW = 900.0
"""The longest window a rate is asked over (seconds)."""

Totals = Counter[tuple[str, str]]
"""Callbacks counted since the start, by (provider, outcome)."""


def totals(metrics: Metrics) -> Totals:
    counted: Totals = Counter()
    for family in metrics.callbacks.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                labels = sample.labels
                counted[(labels["provider"], labels["outcome"])] += int(sample.value)
    return counted


@dataclass(frozen=True, slots=True)
class Rate:
    window_seconds: float
    """The span the counts are over: the window asked, or less since the hub started."""
    callbacks: int
    by_outcome: dict[str, int]
    by_provider: dict[str, int]

    @property
    def per_minute(self) -> float | None:
        """None over less than a second: no rate to speak of yet."""
        if self.window_seconds < 1.0:
            return None
        return self.callbacks * 60.0 / self.window_seconds


class Rates:
    """The samples of one app's counter."""

    def __init__(
        self,
        metrics: Metrics,
        *,
        window: float = WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.metrics = metrics
        self.window = window
        self.clock = clock
        self._samples: deque[tuple[float, Totals]] = deque()

    def sample(self) -> None:
        now = self.clock()
        self._samples.append((now, totals(self.metrics)))
        while len(self._samples) > 1 and self._samples[1][0] <= now - self.window:
            self._samples.popleft()

    def over(self, seconds: float) -> Rate:
        """Callbacks over the last ``seconds`` (at most the window, as far back as sampled)."""
        now, current = self.clock(), totals(self.metrics)
        since, base = next(
            ((at, t) for at, t in self._samples if at >= now - seconds), (now, current)
        )
        counted = current - base
        by_outcome: Counter[str] = Counter()
        by_provider: Counter[str] = Counter()
        for (provider, outcome), n in counted.items():
            by_outcome[outcome] += n
            by_provider[provider] += n
        return Rate(now - since, counted.total(), dict(by_outcome), dict(by_provider))


RATES = web.AppKey("rates", Rates)


async def sampling(app: web.Application) -> AsyncIterator[None]:
    """The app's cleanup context: :class:`Rates` in ``app[RATES]``, sampled from the start."""
    rates = app[RATES] = Rates(app[RUNTIME].metrics)

    async def sample_forever() -> None:
        while True:
            rates.sample()
            await asyncio.sleep(EVERY)

    task = asyncio.get_running_loop().create_task(sample_forever(), name="rates")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
