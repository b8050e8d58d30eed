"""sMsmode's pull source against its fake (``tests.fakes.smsmode``), on a real journal: one
poll at a time (``hub.pull.poller.Poller``), and the hub's own tasks (``hub.app``) across a
restart."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import generate_latest

from core.models import Provider, RawRequest
from hub import journaled
from hub.app import create_app
from hub.pull import state
from hub.pull.poller import MAX_BACKOFF, REFUSED_FACTOR, Poller
from hub.pull.smsmode import OVERLAP, SmsmodeSource
from hub.pull.sources import KNOWN
from hub.quarantine import replay_entry
from hub.settings import Settings
from parsers.pull.smsmode import read_response_list
from sinks import journal as store
from sinks.journal import Journal, QuarantineEntry
from tests.fakes.smsmode import TOKEN, FakeSmsmode, Reply
from tests.pull_poller import poller
from tests.support import OPERATOR, eventually, make_settings, metric

INTERVAL = 0.1
SAMPLES = Path(__file__).resolve().parent.parent / "parsers" / "samples" / "pull" / "smsmode"


def _recent(n: int, minutes: int = 2, **fields: str) -> Reply:
    return Reply(f"resp-{n}", datetime.now(UTC) - timedelta(minutes=minutes), **fields)


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeSmsmode, str]]:
    """The fake, served; and its base address (``HUB_SMSMODE_API_URL``)."""
    async with FakeSmsmode() as fake:
        yield fake, fake.url


def _poller(
    journal: Journal, api_url: str, session: aiohttp.ClientSession, token: str = TOKEN
) -> Poller:
    return poller(SmsmodeSource(token=token, base_url=api_url, interval=INTERVAL), journal, session)


def _journaled_ids(data_dir: Path) -> list[str]:
    return [r.envelope.id for r in store.select(data_dir / store.JOURNAL_FILE, limit=1000)]


async def test_a_poll_journals_each_reply_once_and_the_next_window_overlaps(fake, journal):
    server, url = fake
    async with aiohttp.ClientSession() as session:
        poller = _poller(journal, url, session)
        empty = await poller.poll()  # the empty list
        assert (empty.outcome, empty.events, empty.delay) == ("nothing_new", [], INTERVAL)
        server.add(_recent(1), _recent(2, text="Très bien €"))
        first = await poller.poll()
        assert (first.outcome, len(first.events)) == ("items", 2)
        assert {e.data.details["via"] for e in first.events} == {"poll"}
        assert "Très bien €" in {e.data.text for e in first.events}
        server.add(_recent(3, minutes=0))
        second = await poller.poll()
        assert [e.data.message_id for e in second.events] == ["resp-3"]
        third = await poller.poll()
        assert (third.outcome, third.events) == ("items", [])  # the overlap: read, not kept
    data_dir = journal.path.parent
    assert sorted(_journaled_ids(data_dir)) == sorted(e.id for e in first.events + second.events)
    windows = [(q["startDate"], q["endDate"]) for q in server.calls[1:]]
    parse = lambda t: datetime.strptime(t, "%d%m%Y-%H:%M")  # noqa: E731
    assert all(parse(start) <= parse(end) for start, end in windows)
    assert parse(windows[1][0]) <= parse(windows[0][1]) - OVERLAP + timedelta(minutes=1)
    assert all(q["accessToken"] == TOKEN for q in server.calls)
    saved = state.load(data_dir, "smsmode")
    assert saved.items == 3 and saved.outcome == "items" and saved.failures == 0
    assert set(saved.cursor["seen"]) == {"resp-1", "resp-2", "resp-3"}


async def test_failures_back_off_doubling_and_lose_nothing(fake, journal):
    server, url = fake
    server.add(_recent(1))
    server.fail(
        (200, b"31 | Erreur interne"),
        (503, b"Service Unavailable"),
        (200, b"50 | Temporairement inaccessible"),
    )
    async with aiohttp.ClientSession() as session:
        poller = _poller(journal, url, session)
        polls = [await poller.poll() for _ in range(4)]
    assert [(p.outcome, p.reason) for p in polls] == [
        ("retry_later", "internal_error"),
        ("retry_later", "http_503"),
        ("retry_later", "temporarily_unavailable"),
        ("items", ""),
    ]
    assert [p.delay for p in polls] == [INTERVAL, 2 * INTERVAL, 4 * INTERVAL, INTERVAL]
    assert [p.state.failures for p in polls] == [1, 2, 3, 0]
    assert len(polls[3].events) == 1 and len(_journaled_ids(journal.path.parent)) == 1
    exposition = _exposition(poller)
    assert metric(exposition, "hub_pull_errors_total", provider="smsmode", reason="http_503") == 1
    assert metric(exposition, "hub_pull_polls_total", outcome="retry_later") == 3
    assert metric(exposition, "hub_pull_items_total", provider="smsmode") == 1


async def test_asked_to_wait_the_source_waits_at_least_that_long(fake, journal):
    """An HTTP 429 with ``Retry-After`` (sMsmode documents none: a proxy's, a future limit's)."""
    server, url = fake
    server.add(_recent(1))
    server.fail((429, b"", {"Retry-After": "30"}), (401, b"Unauthorized"))
    async with aiohttp.ClientSession() as session:
        poller = _poller(journal, url, session)
        limited, refused, polled = [await poller.poll() for _ in range(3)]
    assert (limited.outcome, limited.reason, limited.delay) == ("rate_limited", "http_429", 30)
    assert (refused.outcome, refused.reason) == ("credentials_refused", "http_401")
    assert polled.outcome == "items" and len(polled.events) == 1


def _exposition(poller: Poller) -> str:
    return generate_latest(poller.metrics.registry).decode()


async def test_refused_credentials_back_off_long_and_say_so(fake, journal, caplog):
    _, url = fake
    caplog.set_level(logging.INFO)
    async with aiohttp.ClientSession() as session:
        poller = _poller(journal, url, session, token="not-the-account-token")
        polls = [await poller.poll() for _ in range(2)]
    assert [(p.outcome, p.reason) for p in polls] == [
        ("credentials_refused", "authentication_error")
    ] * 2
    assert polls[0].delay == INTERVAL * REFUSED_FACTOR
    assert polls[1].delay == INTERVAL * REFUSED_FACTOR * 2
    assert any(r.levelno == logging.ERROR and "credentials_refused" in r.getMessage()
               for r in caplog.records)  # fmt: skip
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("hub")]  # not the fake's
    assert ours and not any("not-the-account-token" in line for line in ours)
    assert polls[1].delay <= MAX_BACKOFF


async def test_an_answer_not_understood_is_quarantined_once_without_the_secrets(fake, journal):
    """Neither the token (in the query) nor the provider's cookie or credentials headers."""
    server, url = fake
    server.add(_recent(1))
    page = b"<html><body>maintenance</body></html>"
    private = {"set-cookie": "session=s3cret", "Authorization": "Bearer t0ken"}
    server.fail((200, page, {**private, "X-Trace": "r-1"}), (200, page))
    async with aiohttp.ClientSession() as session:
        poller = _poller(journal, url, session)
        polls = [await poller.poll() for _ in range(3)]
    assert [(p.outcome, p.reason) for p in polls[:2]] == [("unreadable", "bad_line")] * 2
    assert polls[0].quarantined is not None and polls[1].quarantined is None  # same bytes
    assert polls[2].outcome == "items" and len(polls[2].events) == 1
    kept = store.quarantined(journal.path)
    assert len(kept) == 1
    entry = kept[0].entry
    assert (entry.provider, entry.callback, entry.reason, entry.body) == (
        "smsmode",
        "responseList",
        "bad_line",
        page,
    )
    assert TOKEN.encode() not in entry.query and b"startDate=" in entry.query
    headers = orjson.loads(entry.headers)
    assert headers["X-Hub-Pull-Status"] == "200" and headers["X-Trace"] == "r-1"
    assert not {"set-cookie", "authorization"} & {k.lower() for k in headers}  # the provider's
    assert b"s3cret" not in entry.headers.encode() and b"t0ken" not in entry.headers.encode()
    exposition = _exposition(poller)
    assert metric(exposition, "hub_pull_errors_total", outcome="unreadable") == 2


def _settings(data_dir: Path, api_url: str) -> Settings:
    return make_settings(
        data_dir,
        smsmode_access_token=TOKEN,
        smsmode_api_url=api_url,
        smsmode_pull_interval=INTERVAL,
    )


async def _shown(data_dir: Path) -> list[str]:
    """What ``hub tail`` shows: the processed events, duplicates left out."""
    return [r.envelope.id for page in journaled.pages(data_dir) for r in page.events]


async def test_the_hub_polls_and_a_restart_neither_misses_nor_repeats(fake, tmp_path):
    server, url = fake
    data_dir = tmp_path / "data"
    server.add(_recent(1), _recent(2))
    async with TestClient(TestServer(create_app(_settings(data_dir, url)))) as client:

        async def two() -> bool:
            return len(await _shown(data_dir)) == 2

        await eventually(two)
        exposition = await (await client.get("/metrics")).text()
        assert metric(exposition, "hub_pull_configured", provider="smsmode") == 1
        lag = metric(exposition, "hub_pull_lag_seconds", provider="smsmode")
        assert lag is not None and 0 <= lag < 60
        status = await (await client.get("/api/v1/status", headers=OPERATOR)).json()
        [pulled] = [p for p in status["pull"] if p["provider"] == "smsmode"]
        assert (pulled["provider"], pulled["configured"], pulled["items"]) == ("smsmode", True, 2)
        assert pulled["outcome"] == "items" and pulled["last_poll"].endswith("Z")
        page = await (await client.get("/console/overview", headers=OPERATOR)).text()
        assert 'id="pull-smsmode"' in page and "2 items journaled" in page
    before = state.load(data_dir, "smsmode")
    # a crash between the journal and the cursor: the cursor on disk forgets the last poll
    state.save(data_dir, "smsmode", state.State())
    server.add(_recent(3, minutes=0))
    polled_before = len(server.calls)
    async with TestClient(TestServer(create_app(_settings(data_dir, url)))):

        async def three() -> bool:
            return len(await _shown(data_dir)) == 3 and len(server.calls) > polled_before + 2

        await eventually(three)
    shown = await _shown(data_dir)
    assert len(set(shown)) == 3
    raw = _journaled_ids(data_dir)
    assert len(raw) == 5 and set(raw) == set(shown)  # replies 1 and 2 again: marked duplicate
    assert before.items == 2


async def test_an_unconfigured_source_is_off_and_counted_as_such(fake, tmp_path):
    server, _ = fake
    async with TestClient(TestServer(create_app(make_settings(tmp_path / "data")))) as client:
        exposition = await (await client.get("/metrics")).text()
        status = await (await client.get("/api/v1/status", headers=OPERATOR)).json()
        page = await (await client.get("/console/overview", headers=OPERATOR)).text()
    assert [(p["provider"], p["configured"], p["last_poll"]) for p in status["pull"]] == [
        (p.value, False, None) for p in KNOWN
    ]
    for provider in (p.value for p in KNOWN):
        assert re.search(rf'<li id="pull-{provider}"><strong>{provider}</strong>:\s+off</li>', page)
        assert metric(exposition, "hub_pull_configured", provider=provider) == 0
        assert metric(exposition, "hub_pull_polls_total", provider=provider, outcome="items") == 0
        assert metric(exposition, "hub_pull_lag_seconds", provider=provider) is None
    assert server.calls == []


async def test_a_quarantined_answer_is_replayed_through_its_reader(journal):
    """Once the reader understands an answer it once refused, ``hub quarantine replay`` makes
    its events (the quarantine keeps the method's name as the callback)."""
    body = (SAMPLES / "example-list.body").read_bytes()
    entry = QuarantineEntry(
        received_at="2026-01-01T00:00:00+00:00",
        provider="smsmode",
        callback="responseList",
        method="GET",
        reason="bad_line",
        content_type="",
        headers="{}",
        query=b"startDate=01012013-12:00&endDate=01012013-13:00",
        body=body,
    )
    number = await journal.quarantine(entry)
    [item] = store.quarantined(journal.path, seq=number)
    replayed = await replay_entry(journal, item)
    assert (replayed.events, replayed.refused) == (2, None)
    ids = _journaled_ids(journal.path.parent)
    expected = orjson.loads((SAMPLES / "example-list.json").read_bytes())["page"]["items"]
    assert ids == [i["events"][0]["id"] for i in expected]


async def test_the_fake_answers_as_the_document_shows_and_the_reader_maps_it(fake):
    """The fake's answers to requests the hub does not make (no token, one date, dates with
    pagination, pagination alone) read as the seed says: 35, 32, the newest replies first."""
    server, url = fake
    server.add(_recent(1, minutes=3), _recent(2, minutes=1))
    asked = {
        "": ("request_refused", "bad_parameter"),
        "accessToken=nope": ("credentials_refused", "authentication_error"),
        f"accessToken={TOKEN}&startDate=01012014-00:00": ("request_refused", "bad_parameter"),
        f"accessToken={TOKEN}&startDate=01012014-00:00&endDate=01022014-00:00&start=0": (
            "request_refused",
            "bad_parameter",
        ),
        f"accessToken={TOKEN}&startDate=01012014-00:00&endDate=01022014-00:00": (
            "nothing_new",
            "",
        ),
    }
    async with aiohttp.ClientSession() as session:
        for query, expected in asked.items():
            async with session.get(f"{url}/responseList.do?{query}") as answer:
                raw = _answer(await answer.read(), answer.headers["Content-Type"])
            page = read_response_list(raw)
            assert (page.outcome.value, page.reason) == expected, query
        async with session.get(f"{url}/responseList.do?accessToken={TOKEN}&offset=1") as answer:
            raw = _answer(await answer.read(), answer.headers["Content-Type"])
    assert [i.key for i in read_response_list(raw).items] == ["resp-2"]


def _answer(body: bytes, content_type: str) -> RawRequest:
    return RawRequest(
        provider=Provider.SMSMODE,
        callback="responseList",
        method="GET",
        body=body,
        content_type=content_type,
        received_at=datetime.now(UTC),
    )
