"""Two real hubs as replicas of one hub, for ``tests/test_replicas*.py``: ``hub serve`` A and
B, each on its own data directory, on one throwaway PostgreSQL (``HUB_INDEX_URL``, the
``postgres``/``database`` fixtures) and one RabbitMQ (the session's node, an exchange of the
test's own), with a durable queue bound to ``#`` that sees every event either publishes.

Callback ``i`` is iSendPro's delivery report of message ``i`` (``tests.support.dlr_query``):
the same ``i`` sent to both replicas is a provider's retry that the load balancer sent
elsewhere, one event (same id). What the checks read once the hubs have stopped: each
replica's journal (its events, the ones its worker marked duplicate left out), the queue, and
the shared index's ``events`` table.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.harness.hubproc import HubProcess
from tests.harness.postgres import PostgresServer
from tests.harness.rabbitmq import RabbitNode
from tests.support import eventually, journaled, sql
from tests.test_durability import on_queue, scrape, subscribe, take_all

__all__ = ["BATCH", "Replicas", "check_once", "replicas_fixture"]

BATCH = 32
"""HUB_FORWARD_BATCH of both: small, so that a stream of a few hundred callbacks is many
batches (and a crash or an outage falls in the middle of some)."""


@dataclass
class Replicas:
    a: HubProcess
    b: HubProcess
    broker: str
    """The broker's URL."""
    queue: str
    """The queue bound to ``#`` on the replicas' exchange."""
    postgres: PostgresServer
    database: str
    """The shared index's URL (on ``postgres``)."""

    @property
    def both(self) -> tuple[HubProcess, HubProcess]:
        return self.a, self.b

    async def total(self, name: str, **labels: str) -> float:
        """A metric's value summed over both replicas' ``/metrics`` (absent: 0)."""
        values = await asyncio.gather(*(scrape(hub, name, **labels) for hub in self.both))
        return sum(v or 0 for v in values)

    async def gauges(self, name: str) -> list[float | None]:
        return list(await asyncio.gather(*(scrape(hub, name) for hub in self.both)))

    async def until(self, name: str, value: float, timeout: float = 60.0) -> None:
        """Until both replicas' gauge ``name`` says ``value``."""

        async def both_say() -> bool:
            return await self.gauges(name) == [value, value]

        await eventually(both_say, timeout)

    async def connected(self) -> None:
        """Until both forwarders are connected to the broker."""
        await self.until("hub_broker_connected", 1)

    async def caught_up(self, timeout: float = 90.0) -> None:
        """Until neither replica has an event left to forward."""
        await self.until("hub_journal_backlog_events", 0, timeout)

    async def stop(self) -> None:
        """SIGTERM to both (each forwards what it still has, then exits 0)."""
        codes = await asyncio.gather(*(asyncio.to_thread(hub.terminate) for hub in self.both))
        assert codes == [0, 0], "\n".join(hub.log_tail() for hub in self.both)

    async def on_exchange(self) -> dict[int, list[str]]:
        """Callback number -> the ``message_id`` of each copy of its event on the queue."""
        return on_queue(await take_all(self.broker, self.queue))

    def index(self) -> dict[int, tuple[int, int]]:
        """Callback number -> (its event's rows in the shared index not marked duplicate,
        all its rows)."""
        rows = sql(
            self.postgres,
            self.database,
            "SELECT message_id, count(*) FILTER (WHERE NOT duplicate), count(*) FROM events"
            " GROUP BY message_id",
        )
        return {int(i): (int(kept), int(every)) for i, kept, every in rows}


def check_once(
    replicas: Replicas, acked: set[int], copies: dict[int, list[str]], sent: set[int]
) -> dict[int, str]:
    """Every acknowledged callback (and nothing else than what was ``sent``) on the exchange
    exactly once, as the event of one replica's journal (the other marked its copy duplicate),
    with that event's id, in that replica's arrival order; in the shared index, once not a
    duplicate. Read once both hubs have stopped. Returns callback number -> event id."""
    journals = [journaled(hub.data_dir) for hub in replicas.both]
    both = journals[0].keys() & journals[1].keys()
    assert not both, f"not a duplicate in both replicas' journals: {sorted(both)[:20]}"
    journal = {**journals[0], **journals[1]}
    assert journal.keys() <= sent
    missing = sorted(acked - copies.keys())
    assert not missing, f"acknowledged but not on the exchange: {missing[:20]} ({len(missing)})"
    assert copies.keys() <= journal.keys(), "on the exchange but in neither journal"
    doubled = {i: len(ids) for i, ids in copies.items() if len(ids) > 1}
    assert not doubled, f"on the exchange more than once: {doubled}"
    for i, ids in copies.items():
        assert ids == [journal[i]], f"callback {i}: message id {ids} != {journal[i]}"
    for each in journals:
        order = [i for i in copies if i in each]
        assert order == list(each), "a replica forwarded out of its arrival order"
    unpublished = sorted(journal.keys() - copies.keys())
    assert not unpublished, f"journaled, not a duplicate, not published: {unpublished[:20]}"
    index = replicas.index()
    assert index.keys() == journal.keys(), "the shared index has other events than the journals"
    wrong = {i: rows for i, rows in index.items() if rows[0] != 1}
    assert not wrong, f"(not duplicate, all) rows in the shared index: {wrong}"
    return journal


@pytest.fixture(name="replicas")
async def replicas_fixture(
    tmp_path: Path, rabbit: RabbitNode, postgres: PostgresServer, database: str
) -> AsyncIterator[Replicas]:
    """Replicas A and B running (``hub serve``, their forwarders connected to the broker), the
    queue bound before either publishes; both stopped at teardown if still running."""
    exchange = f"replicas-{uuid.uuid4().hex[:8]}"
    queue = await subscribe(rabbit.url, exchange)
    env = {
        "HUB_INDEX_URL": database,
        "HUB_EXCHANGE": exchange,
        "HUB_FORWARD_BATCH": str(BATCH),
    }
    a, b = (HubProcess(tmp_path / name, env, rabbitmq_url=rabbit.url) for name in "ab")
    pair = Replicas(a, b, rabbit.url, queue, postgres, database)
    try:
        await asyncio.gather(*(asyncio.to_thread(hub.start) for hub in pair.both))
        await pair.connected()
        yield pair
    finally:
        await asyncio.gather(*(asyncio.to_thread(hub.stop) for hub in pair.both))
