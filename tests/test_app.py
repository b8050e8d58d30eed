"""The web app with an in-memory sink or the embedded journal: replies, quarantine, metrics."""

from __future__ import annotations

import orjson
import pytest
from aiohttp.test_utils import TestClient

from hub.app import create_app, endpoints
from hub.models import Event, Provider
from hub.settings import Settings
from parsers import REGISTRY
from sinks import journal as journal_store
from sinks.memory import MemorySink
from tests.conftest import SEED_DLR, SEED_REPLY

DLR = "/callbacks/isendpro/delivery"


@pytest.fixture
def memory() -> MemorySink:
    return MemorySink()


@pytest.fixture
async def client(aiohttp_client, settings: Settings, memory: MemorySink) -> TestClient:
    return await aiohttp_client(create_app(settings, sink=memory))


async def test_delivery_report_is_acknowledged_with_validation(client, memory) -> None:
    resp = await client.get(f"{DLR}?{SEED_DLR.decode()}")
    assert resp.status == 200
    assert await resp.read() == b"validation"
    assert resp.content_type == "text/plain"
    [event] = memory.events
    assert event.routing_key == "isendpro.sms.delivery.delivered"
    assert event.data.message_id == "35986"
    assert event.data.recipient == "+33612345678"


async def test_reply_is_acknowledged_with_validation(client, memory) -> None:
    resp = await client.get(f"/callbacks/isendpro/reply?{SEED_REPLY.decode()}")
    assert await resp.read() == b"validation"
    assert [e.data.text for e in memory.events] == ["STOP SMS"]


async def test_retry_gives_the_same_event_id(client, memory) -> None:
    for _ in range(2):
        await client.get(f"{DLR}?{SEED_DLR.decode()}")
    first, second = memory.events
    assert first.id == second.id


async def test_sink_unavailable_gives_probleme_and_counts_nothing_delivered(client, memory) -> None:
    memory.failing = True
    resp = await client.get(f"{DLR}?{SEED_DLR.decode()}")
    assert await resp.read() == b"probleme"
    metrics = await (await client.get("/metrics")).text()
    assert (
        'hub_callbacks_total{endpoint="delivery",outcome="unavailable",provider="isendpro",'
        'reason="test_failure"} 1.0' in metrics
    )
    assert "hub_events_total{" not in metrics


async def test_bad_input_gets_probleme_and_is_quarantined(client, settings, memory) -> None:
    resp = await client.get(f"{DLR}?tel=0612345678&statut=0&date=yesterday&heure=noon")
    assert await resp.read() == b"probleme"
    assert memory.events == []
    path = settings.data_dir / journal_store.JOURNAL_FILE
    with journal_store.closing(journal_store.sqlite3.connect(path)) as conn:
        rows = conn.execute(
            "SELECT provider, callback, method, reason, query FROM quarantine"
        ).fetchall()
    assert rows == [
        (
            "isendpro",
            "delivery",
            "GET",
            "bad_timestamp",
            b"tel=0612345678&statut=0&date=yesterday&heure=noon",
        )
    ]
    metrics = await (await client.get("/metrics")).text()
    assert 'outcome="rejected",provider="isendpro",reason="bad_timestamp"} 1.0' in metrics


async def test_metrics_count_events_and_start_at_zero(client) -> None:
    before = await (await client.get("/metrics")).text()
    assert (
        'hub_callbacks_total{endpoint="reply",outcome="accepted",provider="isendpro",reason=""} 0.0'
        in before
    )
    await client.get(f"{DLR}?{SEED_DLR.decode()}")
    after = await (await client.get("/metrics")).text()
    assert (
        'hub_events_total{channel="sms",kind="delivery",provider="isendpro",state="delivered"} 1.0'
        in after
    )
    assert (
        'hub_callback_duration_seconds_count{endpoint="delivery",provider="isendpro"} 1.0' in after
    )


async def test_health(client, memory) -> None:
    assert (await client.get("/health/live")).status == 200
    ready = await client.get("/health/ready")
    assert ready.status == 200
    memory.failing = True
    not_ready = await client.get("/health/ready")
    assert not_ready.status == 503
    assert (await not_ready.json())["sink"] is False


async def test_wrong_method_is_405(client) -> None:
    assert (await client.post(DLR, data=b"x")).status == 405


async def test_embedded_default_journals_the_event(aiohttp_client, settings) -> None:
    client = await aiohttp_client(create_app(settings))
    resp = await client.get(f"{DLR}?{SEED_DLR.decode()}")
    assert await resp.read() == b"validation"
    [stored] = journal_store.read_events(settings.data_dir / journal_store.JOURNAL_FILE)
    assert stored.event().routing_key == "isendpro.sms.delivery.delivered"


def test_routes_match_registry() -> None:
    """Parser modules, registry keys and routes agree."""
    assert set(REGISTRY) == set(Provider)
    for module_provider, module in REGISTRY.items():
        assert module.PROVIDER is module_provider
        assert module.__name__ == f"parsers.{module_provider.value}"
    paths = {e.path for e in endpoints()}
    assert "/callbacks/isendpro/delivery" in paths
    assert all(p.split("/")[2] in {x.value for x in Provider} for p in paths)


def test_cloudevents_sdk_reads_our_events(settings) -> None:
    """The SDK's JSON format reader validates the CloudEvents 1.0 attributes."""
    from cloudevents.core.formats.json import JSONFormat

    from tests.golden import all_cases, run

    docs = [doc for case in all_cases() for doc in run(case).get("events", [])]
    assert docs
    for doc in docs:
        body = orjson.dumps(doc)
        ce = JSONFormat().read(None, body)
        assert ce.get_specversion() == "1.0"
        assert ce.get_id() == doc["id"]
        assert ce.get_type() == f"org.callbackhub.{doc['data']['kind']}.v1"
        assert ce.get_time() is not None and ce.get_time().utcoffset().total_seconds() == 0
        assert ce.get_data() == doc["data"]
        assert Event.from_json(body).to_json() == body
