"""Two real hubs (``hub serve``, each on its own data directory, without a broker) on one
shared index (``HUB_INDEX_URL``, a throwaway PostgreSQL): a provider's retry sent to the other
replica is one event in the shared index and in the counts.

What issue 19 asks beyond (one RabbitMQ, PostgreSQL stopped under load, a replica SIGKILLed
mid-stream, the console of one replica finding what the other took) builds on this."""

from __future__ import annotations

import urllib.request

from tests.harness.hubproc import HubProcess
from tests.support import DLR, dlr_query, metric, sql, wait_until


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return answer.read().decode()


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
