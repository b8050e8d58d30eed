"""A pull source's :class:`~hub.pull.poller.Poller` as the sources' tests make it: on the test's
journal and session, metrics of its own, the cursors beside the journal, and the back-off's
longest delay each time (``jitter`` 1), so that every delay is known."""

from __future__ import annotations

from typing import Any

import aiohttp
from prometheus_client import CollectorRegistry

from hub.pull.poller import Poller
from hub.pull.source import Source
from sinks.journal import Journal
from sinks.metrics import Metrics


def poller(source: Source, journal: Journal, session: aiohttp.ClientSession, **kw: Any) -> Poller:
    """``source``'s poller (``kw``: the poller's other arguments, a clock and a sleep...)."""
    return Poller(
        source,
        journal=journal,
        metrics=Metrics(CollectorRegistry()),
        session=session,
        data_dir=journal.path.parent,
        **{"jitter": lambda: 1.0, **kw},
    )
