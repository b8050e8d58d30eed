"""Two real hubs (``hub serve``, each on its own data directory) on one shared index
(``HUB_INDEX_URL``, a throwaway PostgreSQL): a provider's retry sent to the other replica is one
event in the shared index, in the counts and, with a broker (``tests.replicas``), on the
exchange; the same callbacks sent to both at once too.

Faults (PostgreSQL stopped under load, a replica SIGKILLed mid-stream): ``test_replicas_faults``.
"""

from __future__ import annotations

import asyncio
import urllib.request

import pytest

from tests.harness.hubproc import HubProcess
from tests.replicas import check_once, replicas_fixture  # noqa: F401 - the fixture
from tests.support import (
    DLR,
    Results,
    dlr_query,
    eventually,
    journaled,
    metric,
    sql,
    stream,
    wait_until,
)
from tests.test_durability import scrape


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return answer.read().decode()


async def forwarded(hub: HubProcess, count: int) -> bool:
    return await scrape(hub, "hub_forwarded_events_total", provider="isendpro") == count


def test_a_retry_sent_to_the_other_replica_is_one_event(postgres, database, tmp_path) -> None:
    # a password (the server trusts loopback: any is good) that no log line may hold
    shared = {"HUB_INDEX_URL": database.replace("hub@", "hub:s3cret@")}
    with (
        HubProcess(tmp_path / "a", shared) as a,
        HubProcess(tmp_path / "b", shared) as b,
    ):
        callback = f"{DLR}?{dlr_query(35986)}"
        assert _get(a.url + callback) == "validation"

        def recorded(count: int) -> bool:
            try:
                rows = sql(postgres, database, "SELECT count(*) FROM events")
            except RuntimeError:  # the tables are made by the first worker's migration
                return False
            return rows == [[str(count)]]

        wait_until(lambda: recorded(1), failure=a.log_tail)
        assert _get(b.url + callback) == "validation"  # the provider's retry, elsewhere
        wait_until(lambda: recorded(2), failure=b.log_tail)
        rows = sql(
            postgres, database, "SELECT replica, message_id, duplicate FROM events ORDER BY n"
        )
        name = {h: (h.data_dir / "replica").read_text().strip() for h in (a, b)}
        assert rows == [[name[a], "35986", "f"], [name[b], "35986", "t"]]
        assert sql(postgres, database, "SELECT count(*) FROM claims") == [["1"]]
        # the counts: one event, A's; B counts a duplicate
        text_a, text_b = _get(a.url + "/metrics"), _get(b.url + "/metrics")
        labels = {"provider": "isendpro", "kind": "delivery", "state": "delivered"}
        assert metric(text_a, "hub_events_total", **labels) == 1
        assert metric(text_b, "hub_events_total", **labels) is None
        assert metric(text_b, "hub_duplicate_events_total", provider="isendpro") == 1
    logs = {hub: hub.log_file.read_text() for hub in (a, b)}
    assert any("shared index: schema migrated" in log for log in logs.values())  # the workers'
    assert not any("s3cret" in log for log in logs.values())


# -- with a broker: one event on the exchange ---------------------------------------------------


@pytest.mark.broker
async def test_a_retry_sent_to_the_other_replica_is_one_event_on_the_exchange(replicas) -> None:
    """The same callback sent to replica A, published, then to replica B (the provider's retry,
    elsewhere): one event on the exchange (a queue bound to '#'), one row in the shared index
    not marked duplicate, one in the counts (``hub_events_total`` over both ``/metrics``); B
    counts a duplicate."""
    labels = {"provider": "isendpro", "kind": "delivery", "state": "delivered"}
    async with asyncio.timeout(120):
        first = await stream(replicas.a.url, range(1), Results())
        await eventually(lambda: forwarded(replicas.a, 1))
        again = await stream(replicas.b.url, range(1), Results())

        async def recognized() -> bool:
            return await scrape(replicas.b, "hub_duplicate_events_total", provider="isendpro") == 1

        await eventually(recognized)
        await replicas.caught_up()
        counted = await replicas.total("hub_events_total", **labels)
        published = await replicas.total("hub_forwarded_events_total", provider="isendpro")
        await replicas.stop()
        copies = await replicas.on_exchange()
    assert first.acked == again.acked == {0}
    assert counted == 1
    assert published == 1
    check_once(replicas, {0}, copies, {0})
    assert replicas.index() == {0: (1, 2)}  # B's copy recorded, as a duplicate


@pytest.mark.broker
async def test_the_same_callbacks_sent_to_both_replicas_at_once_are_each_one_event(
    replicas,
) -> None:
    """200 callbacks, each sent to A and to B at the same time (both workers record the same
    ids in their batches together; the claims decide): each callback is one event on the
    exchange, once not a duplicate in the shared index, and counted once over both
    replicas."""
    ids = range(200)
    async with asyncio.timeout(120):
        sent = await asyncio.gather(
            *(stream(hub.url, ids, Results(), in_flight=8) for hub in replicas.both)
        )
        await replicas.caught_up()
        counted = await replicas.total("hub_events_total", provider="isendpro")
        duplicates = await replicas.total("hub_duplicate_events_total", provider="isendpro")
        await replicas.stop()
        copies = await replicas.on_exchange()
    assert [r.acked for r in sent] == [set(ids), set(ids)]
    journal = check_once(replicas, set(ids), copies, set(ids))
    assert (counted, duplicates) == (200, 200)
    # both took some first (not a test of the claims if one replica always wins)
    a_first = journaled(replicas.a.data_dir).keys()
    assert 0 < len(a_first) < len(journal), f"A first for {len(a_first)} of {len(journal)}"
