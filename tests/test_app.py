"""The web app with the real journal and an in-memory sink: replies, dedup, quarantine, metrics."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from datetime import UTC, datetime

import orjson
import pytest
from aiohttp.test_utils import TestClient

from core.models import Event, Provider
from hub import journaled
from hub.app import create_app, endpoints
from hub.handlers import JOURNAL, RUNTIME
from hub.settings import Settings
from parsers import REGISTRY
from sinks import journal as journal_store
from sinks.memory import MemorySink
from tests.support import (
    DLR,
    REPLY,
    SEED_DLR,
    SEED_REPLY,
    dlr_query,
    eventually,
    get_raw,
    make_settings,
    metric,
    unforwarded,
)


@pytest.fixture
def memory() -> MemorySink:
    return MemorySink()


@pytest.fixture
async def client(aiohttp_client, settings: Settings, memory: MemorySink) -> TestClient:
    return await aiohttp_client(create_app(settings, sink=memory))


def journal_path(settings: Settings):
    return settings.data_dir / journal_store.JOURNAL_FILE


async def metrics_of(client) -> str:
    return await (await client.get("/metrics")).text()


async def test_delivery_report_is_journaled_acknowledged_and_forwarded(client, settings, memory):
    resp = await get_raw(client, f"{DLR}?{SEED_DLR.decode()}")
    assert resp.status == 200
    assert await resp.read() == b"validation"
    assert resp.content_type == "text/plain"
    [stored] = journal_store.select(journal_path(settings))
    assert stored.event().routing_key == "isendpro.sms.delivery.delivered"

    async def forwarded() -> bool:  # published, and the forwarder's cursor past it
        return unforwarded(settings.data_dir) == 0

    await eventually(forwarded)
    [event] = memory.events
    assert event.id == stored.envelope.id
    assert event.data.message_id == "35986"
    assert event.data.recipient == "+33612345678"


async def test_reply_is_acknowledged_with_validation(client, settings):
    resp = await client.get(f"{REPLY}?{SEED_REPLY.decode()}")
    assert await resp.read() == b"validation"
    [stored] = journal_store.select(journal_path(settings))
    assert stored.event().data.text == "STOP SMS"


async def test_a_retry_is_journaled_acknowledged_and_marked_duplicate_not_published(
    client, settings, memory
):
    first = await get_raw(client, f"{DLR}?{SEED_DLR.decode()}")
    second = await get_raw(client, f"{DLR}?{SEED_DLR.decode()}")
    assert await first.read() == await second.read() == b"validation"
    assert len(journal_store.select(journal_path(settings))) == 2  # insert-only: both kept

    async def processed() -> bool:
        return journaled.processed(settings.data_dir) == 2 and unforwarded(settings.data_dir) == 0

    await eventually(processed)
    assert len(memory.envelopes) == 1  # the retry is never published
    text = await metrics_of(client)
    labels = {"provider": "isendpro", "endpoint": "delivery"}
    assert metric(text, "hub_callbacks_total", outcome="accepted", **labels) == 2
    assert metric(text, "hub_duplicate_events_total", provider="isendpro") == 1
    assert metric(text, "hub_events_total", provider="isendpro", state="delivered") == 1
    assert metric(text, "hub_forwarded_events_total", provider="isendpro") == 1
    counts = journaled.counts(settings.data_dir)
    assert (counts.events, counts.duplicates) == (1, 1)
    [page] = list(journaled.pages(settings.data_dir))
    assert [s.seq for s in page.events] == [1]


async def test_retry_outside_the_window_is_a_new_event(aiohttp_client, tmp_path):
    settings = make_settings(tmp_path / "d", dedup_window=1e-9)
    client = await aiohttp_client(create_app(settings))
    for _ in range(2):
        await get_raw(client, f"{DLR}?{SEED_DLR.decode()}")

    async def processed() -> bool:
        return journaled.processed(settings.data_dir) == 2

    await eventually(processed)
    assert journaled.counts(settings.data_dir).duplicates == 0
    [page] = list(journaled.pages(settings.data_dir))
    assert [s.seq for s in page.events] == [1, 2]


async def test_broker_away_still_acknowledges_and_keeps_a_backlog(client, settings, memory):
    memory.failing = True
    for i in range(3):
        resp = await client.get(f"{DLR}?{dlr_query(i)}")
        assert await resp.read() == b"validation"
    text = await metrics_of(client)
    assert metric(text, "hub_journal_backlog_events") == 3
    assert metric(text, "hub_forwarded_events_total", provider="isendpro") == 0
    assert metric(text, "hub_broker_connected") == 0

    memory.failing = False

    async def drained() -> bool:
        return len(memory.envelopes) == 3

    await eventually(drained)
    assert [e.data.message_id for e in memory.events] == ["0", "1", "2"]
    text = await metrics_of(client)
    assert metric(text, "hub_journal_backlog_events") == 0
    assert metric(text, "hub_forwarded_events_total", provider="isendpro") == 3


async def test_full_journal_gives_probleme_and_loses_nothing_acknowledged(aiohttp_client, tmp_path):
    settings = make_settings(tmp_path / "d", journal_max_bytes=256 * 1024)  # WAL and index count
    client = await aiohttp_client(create_app(settings))
    acknowledged, refused = [], []
    for i in range(400):
        body = await (await client.get(f"{DLR}?{dlr_query(i)}")).read()
        (acknowledged if body == b"validation" else refused).append(str(i))
        assert body in (b"validation", b"probleme")
    assert acknowledged and refused
    stored = journal_store.select(settings.data_dir / journal_store.JOURNAL_FILE, limit=10_000)
    assert [s.event().data.message_id for s in stored] == acknowledged
    text = await metrics_of(client)
    assert metric(text, "hub_callbacks_total", outcome="unavailable", reason="journal_full") == len(
        refused
    )


async def test_bad_input_gets_probleme_and_is_quarantined(client, settings):
    resp = await client.get(f"{DLR}?tel=0612345678&statut=0&date=yesterday&heure=noon")
    assert await resp.read() == b"probleme"
    with closing(sqlite3.connect(journal_path(settings))) as conn:
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
    assert journal_store.stats(journal_path(settings)).events == 0
    text = await metrics_of(client)
    assert metric(text, "hub_callbacks_total", outcome="rejected", reason="bad_timestamp") == 1


async def test_metrics_count_events_and_start_at_zero(client):
    before = await metrics_of(client)
    for e in endpoints():
        labels = {"provider": e.provider.value, "endpoint": e.callback.name}
        assert metric(before, "hub_callbacks_total", outcome="accepted", reason="", **labels) == 0
    await get_raw(client, f"{DLR}?{SEED_DLR.decode()}")

    async def counted() -> bool:  # by the pipeline worker, after the answer
        return metric(await metrics_of(client), "hub_events_total", provider="isendpro") == 1

    await eventually(counted)
    after = await metrics_of(client)
    assert (
        metric(
            after,
            "hub_events_total",
            provider="isendpro",
            channel="sms",
            kind="delivery",
            state="delivered",
        )
        == 1
    )
    assert (
        metric(
            after, "hub_callback_duration_seconds_count", provider="isendpro", endpoint="delivery"
        )
        == 1
    )
    assert metric(after, "hub_journal_commit_duration_seconds_count") >= 1


async def test_health(client):
    assert (await client.get("/health/live")).status == 200
    ready = await client.get("/health/ready")
    assert ready.status == 200
    assert await ready.json() == {"journal": True, "not_draining": True}


async def test_without_broker_there_is_no_broker_gauge(aiohttp_client, settings):
    client = await aiohttp_client(create_app(settings))
    text = await metrics_of(client)
    assert metric(text, "hub_broker_connected") is None
    assert metric(text, "hub_journal_backlog_events") == 0


async def test_wrong_method_is_405(client):
    assert (await client.post(DLR, data=b"x")).status == 405


async def test_restart_forwards_what_was_left(aiohttp_client, settings):
    """Events journaled while the sink failed are forwarded by the next process at start."""
    failing = MemorySink()
    failing.failing = True
    first = await aiohttp_client(create_app(settings, sink=failing))
    await first.get(f"{DLR}?{dlr_query(1)}")
    await first.close()
    assert unforwarded(settings.data_dir) == 1

    memory = MemorySink()
    await aiohttp_client(create_app(settings, sink=memory))

    async def forwarded() -> bool:
        return len(memory.envelopes) == 1

    await eventually(forwarded)


def test_routes_match_registry() -> None:
    """Parser modules, registry keys and routes agree."""
    assert set(REGISTRY) == set(Provider)
    for provider, module in REGISTRY.items():
        assert module.PROVIDER is provider
        assert module.__name__ == f"parsers.{provider.value}"
        assert module.CALLBACKS
    assert {e.route.split("/")[2] for e in endpoints()} == {p.value for p in Provider}
    assert all(e.route.split("/")[3] == "{secret}" for e in endpoints())


def test_cloudevents_sdk_reads_our_events() -> None:
    """The SDK's JSON format reader validates the CloudEvents 1.0 attributes."""
    from cloudevents.core.formats.json import JSONFormat

    from tests.golden import all_cases, run

    docs = [doc for case in all_cases() for doc in run(case).get("events", [])]
    assert len(docs) > 50
    for doc in docs:
        body = orjson.dumps(doc)
        ce = JSONFormat().read(None, body)
        assert ce.get_specversion() == "1.0"
        assert ce.get_id() == doc["id"]
        assert ce.get_type() == f"org.callbackhub.{doc['data']['kind']}.v1"
        assert ce.get_time() is not None and ce.get_time().utcoffset().total_seconds() == 0
        assert ce.get_data() == doc["data"]
        assert Event.from_json(body).to_json() == body


async def test_http_metrics_use_route_patterns_and_quarantine_is_counted(client):
    await get_raw(client, f"{DLR}?{SEED_DLR.decode()}")
    await client.get("/no/such/path/0612345678")
    await client.get(f"{DLR}?statut=0")
    text = await metrics_of(client)
    route = "/callbacks/isendpro/{secret}/delivery"
    assert metric(text, "hub_http_requests_total", route=route, method="GET", status="200") == 2
    assert (
        metric(text, "hub_http_requests_total", route="unmatched", method="GET", status="404") == 1
    )
    assert "0612345678" not in text
    assert metric(text, "hub_quarantine_requests") == 1
    assert metric(text, "hub_build_info", version="0.1.0") == 1


async def test_wrong_or_missing_secret_is_404_and_counted(client, memory):
    wrong = await client.get(f"/callbacks/isendpro/not-the-secret/delivery?{SEED_DLR.decode()}")
    missing = await client.get(f"/callbacks/isendpro/delivery?{SEED_DLR.decode()}")
    assert wrong.status == missing.status == 404
    text = await metrics_of(client)
    assert (
        metric(
            text,
            "hub_callbacks_total",
            outcome="unauthorized",
            reason="secret",
            endpoint="delivery",
        )
        == 1
    )
    assert "not-the-secret" not in text
    assert metric(text, "hub_http_requests_total", route="unmatched", status="404") == 1
    assert memory.envelopes == []


async def test_two_secrets_are_accepted_during_a_rotation(aiohttp_client, tmp_path):
    settings = make_settings(tmp_path / "d", secret_isendpro="new-secret, old-secret")
    client = await aiohttp_client(create_app(settings))
    for secret in ("new-secret", "old-secret"):
        resp = await client.get(f"/callbacks/isendpro/{secret}/delivery?{dlr_query(1)}")
        assert await resp.read() == b"validation"
    assert (
        await client.get(f"/callbacks/isendpro/test-secret-0123456789/delivery?{dlr_query(2)}")
    ).status == 404


async def test_without_configured_secrets_they_are_generated_once(aiohttp_client, tmp_path):
    from hub.secrets import SECRETS_FILE

    settings = Settings(data_dir=tmp_path / "d")
    client = await aiohttp_client(create_app(settings))
    stored = orjson.loads((settings.data_dir / SECRETS_FILE).read_bytes())
    assert set(stored) == {p.value for p in Provider}
    assert all(len(s[0]) >= 22 for s in stored.values())  # 16 random bytes, base64url
    assert (settings.data_dir / SECRETS_FILE).stat().st_mode & 0o077 == 0
    secret = stored["isendpro"][0]
    resp = await client.get(f"/callbacks/isendpro/{secret}/delivery?{dlr_query(1)}")
    assert await resp.read() == b"validation"
    again = create_app(settings)
    assert again[RUNTIME].secrets[Provider.ISENDPRO] == (secret,)


async def test_retention_deletes_old_events_forwarded_ones_only_with_a_broker(tmp_path):
    from sinks.journal import Journal

    journal = Journal.open(tmp_path)
    try:
        old = [
            e for q in (dlr_query(1), dlr_query(2)) for e in _parse(q, "2020-01-01T00:00:00+00:00")
        ]
        new = _parse(dlr_query(3), "2030-01-01T00:00:00+00:00")
        await journal.append([*old, *new])
        [first, *_] = journal_store.select(journal.path)
        cutoff = datetime(2025, 1, 1, tzinfo=UTC).timestamp()
        assert await journal.prune(cutoff, forwarded_up_to=0) == 0  # nothing forwarded yet
        assert await journal.prune(cutoff, forwarded_up_to=first.seq) == 1
        assert await journal.prune(cutoff, forwarded_up_to=None) == 1  # no broker: all old ones
        assert [s.event().data.message_id for s in journal_store.select(journal.path)] == ["3"]
    finally:
        journal.close()


async def test_retention_deletes_in_chunks_of_their_own_commits(tmp_path):
    from sinks.journal import Journal

    commits: list[float] = []
    journal = Journal.open(tmp_path, on_commit=commits.append)
    try:
        when = "2020-01-01T00:00:00+00:00"
        await journal.append([e for i in range(7) for e in _parse(dlr_query(i), when)])
        before = len(commits)
        cutoff = datetime(2025, 1, 1, tzinfo=UTC).timestamp()
        assert await journal.prune(cutoff, forwarded_up_to=None, chunk=3) == 7
        assert len(commits) - before == 3  # 3 + 3 + 1
        assert journal_store.select(journal.path) == []
    finally:
        journal.close()


def _parse(query: str, received_at: str):
    from core.models import RawRequest

    request = RawRequest(
        provider=Provider.ISENDPRO,
        callback="delivery",
        method="GET",
        query=query.encode(),
        received_at=datetime.fromisoformat(received_at),
    )
    return REGISTRY[Provider.ISENDPRO].parse(request)


async def test_a_failing_background_task_is_logged_and_shutdown_still_closes(
    aiohttp_client, settings, monkeypatch, caplog
):
    """The retention task dies of a bug: an ERROR names it (it was lost silently before), and
    the app's shutdown awaits it and closes the journal all the same."""
    failed = asyncio.Event()

    async def broken(self, *args, **kwargs):
        failed.set()
        raise RuntimeError("a bug in retention")

    monkeypatch.setattr(journal_store.Journal, "prune", broken)
    client = await aiohttp_client(create_app(settings))
    journal = client.app[JOURNAL]
    async with asyncio.timeout(10):
        await failed.wait()

    async def logged() -> bool:
        return any("retention" in r.getMessage() for r in caplog.records)

    await eventually(logged, timeout=10)
    [record] = [r for r in caplog.records if "background task retention failed" in r.getMessage()]
    assert record.levelname == "ERROR"
    await client.close()
    assert journal is not None and not journal.ready  # closed
