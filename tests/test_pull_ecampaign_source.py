"""eCampaign's pull source (``hub.pull.ecampaign``) against its fake (``tests.fakes.ecampaign``),
on a real journal: the lists polled in turn, each entry journaled once (high-water mark and
content keys), failures backing off with nothing lost, and the hub's own task (``hub.app``)
across a restart that lost the cursor; then the cursor policy alone, pure."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import generate_latest

from core.models import Channel, Event, EventData, Kind, Provider, State
from hub import journaled
from hub.app import create_app
from hub.pull import http, state
from hub.pull.ecampaign import OVERLAP, EcampaignSource
from hub.pull.poller import REFUSED_FACTOR, Polled, Poller
from hub.settings import Settings
from parsers.pull.base import Item, Outcome, Page
from parsers.times import PARIS
from sinks import journal as store
from sinks.journal import Journal
from tests.fakes.ecampaign import PASSWORD, USER, Entry, Fail, FakeEcampaign
from tests.pull_poller import poller
from tests.support import OPERATOR, clean_env, eventually, make_settings, metric, run_hub

INTERVAL = 0.1
ROUND = 6
"""Three channels, two lists each."""


def _date(minutes_ago: float = 2) -> str:
    """An entry's ``DATE_HEURE``: Paris wall clock, to the second."""
    when = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    return when.astimezone(PARIS).strftime("%Y-%m-%d %H:%M:%S")


def _stop(number: str, minutes_ago: float = 2, text: str = "STOP") -> Entry:
    return Entry(_date(minutes_ago), code="33", number=number, message=text)


@pytest.fixture
async def fake() -> AsyncIterator[FakeEcampaign]:
    async with FakeEcampaign() as served:
        yield served


def _poller(
    journal: Journal, url: str, session: aiohttp.ClientSession, password: str = PASSWORD
) -> Poller:
    source = EcampaignSource(user=USER, password=password, base_url=url, interval=INTERVAL)
    return poller(source, journal, session)


async def _round(poller: Poller) -> list[Polled]:
    return [await poller.poll() for _ in range(poller.source.round)]


def _journaled(data_dir: Path) -> list[str]:
    return [r.envelope.id for r in store.select(data_dir / store.JOURNAL_FILE, limit=1000)]


def _exposition(poller: Poller) -> str:
    return generate_latest(poller.metrics.registry).decode()


async def test_a_round_reads_each_list_in_turn_and_journals_each_entry_once(fake, journal):
    fake.reply("sms", _stop("612345678"))
    fake.reply("mail", Entry(_date(), email="client@example.fr", message="Merci"))
    fake.blacklist("sms", Entry(_date(), code="33", number="612345678", reason="STOP SMS"))
    fake.blacklist("mail", Entry(_date(), email="parti@example.fr"))
    async with aiohttp.ClientSession() as session:
        poller = _poller(journal, fake.url, session)
        first = await _round(poller)
        assert [c.path.removeprefix("/manageFeedback/") for c in fake.calls] == [
            "sms/getResponses",
            "sms/getBlacklist",
            "fax/getResponses",
            "fax/getBlacklist",
            "mail/getResponses",
            "mail/getBlacklist",
        ]
        assert [p.again for p in first] == [True] * 5 + [False]  # the round at once, then wait
        assert [p.delay for p in first] == [0.0] * 5 + [INTERVAL]
        events = [e for p in first for e in p.events]
        kinds = sorted((e.data.channel.value, e.data.kind.value) for e in events)
        assert kinds == [("mail", "inbound"), ("mail", "interaction"),
                         ("sms", "inbound"), ("sms", "interaction")]  # fmt: skip
        assert {e.data.details["via"] for e in events} == {"poll"}
        # the same lists again: read, nothing journaled again
        second = await _round(poller)
        assert [p.outcome for p in second] == [p.outcome for p in first]
        assert [e for p in second for e in p.events] == []
        # a new reply, the same second as the first one's: at the mark, told apart by its key
        fake.reply("sms", Entry(fake.responses["sms"][0].date, code="33", number="699999999",
                                message="STOP"))  # fmt: skip
        third = await _round(poller)
        [new] = [e for p in third for e in p.events]
        assert new.data.sender == "+33699999999"
    data_dir = journal.path.parent
    assert sorted(_journaled(data_dir)) == sorted(e.id for e in [*events, new])
    saved = state.load(data_dir, "ecampaign")
    assert saved.items == 5 and saved.failures == 0 and saved.cursor["next"] == "sms/getResponses"
    assert "6 lists read" in EcampaignSource.describe(saved.cursor)
    assert metric(_exposition(poller), "hub_pull_items_total", provider="ecampaign") == 5


async def test_only_the_configured_channels_are_polled(fake, journal):
    fake.reply("fax", _stop("512345678"))
    async with aiohttp.ClientSession() as session:
        source = EcampaignSource(user=USER, password=PASSWORD, channels=[Channel.SMS],
                                 base_url=fake.url, interval=INTERVAL)  # fmt: skip
        polls = await _round(poller(source, journal, session))
    assert source.round == 2 and [p.events for p in polls] == [[], []]
    assert {c.path for c in fake.calls} == {
        "/manageFeedback/sms/getResponses",
        "/manageFeedback/sms/getBlacklist",
    }


async def test_failures_back_off_and_lose_nothing(fake, journal, monkeypatch):
    fake.reply("sms", _stop("612345678"))
    monkeypatch.setattr(http, "TIMEOUT", aiohttp.ClientTimeout(total=0.3))  # not 60 s here
    async with aiohttp.ClientSession() as session:
        poller = _poller(journal, fake.url, session)
        fake.fail = Fail.SERVER_ERROR
        failed = [await poller.poll() for _ in range(2)]
        fake.fail = Fail.HANG
        hung = await poller.poll()
        fake.fail = None
        recovered = await poller.poll()
    assert [(p.outcome, p.reason) for p in [*failed, hung]] == [
        ("retry_later", "http_500"),
        ("retry_later", "http_500"),
        ("retry_later", "timeout"),
    ]
    assert [p.delay for p in [*failed, hung]] == [INTERVAL, 2 * INTERVAL, 4 * INTERVAL]
    # no answer (a 500, a timeout) asks the same list again: the reply comes with the recovery
    assert (recovered.outcome, recovered.state.failures, len(recovered.events)) == ("items", 0, 1)
    assert {c.path for c in fake.calls} == {"/manageFeedback/sms/getResponses"}
    async with aiohttp.ClientSession() as session:
        rest = await _round(_poller(journal, fake.url, session))
    assert [e for p in rest for e in p.events] == []
    assert len(_journaled(journal.path.parent)) == 1
    exposition = _exposition(poller)
    assert metric(exposition, "hub_pull_errors_total", provider="ecampaign",
                  reason="http_500") == 2  # fmt: skip
    assert metric(exposition, "hub_pull_errors_total", provider="ecampaign", reason="timeout") == 1


async def test_refused_credentials_back_off_long_and_the_password_is_never_logged(
    fake, journal, caplog
):
    caplog.set_level(logging.DEBUG)
    fake.reply("sms", _stop("612345678"))
    async with aiohttp.ClientSession() as session:
        refused = _poller(journal, fake.url, session, password="not-the-password")
        polls = [await refused.poll() for _ in range(2)]
        fake.fail = Fail.NOT_ENABLED
        not_enabled = await _poller(journal, fake.url, session).poll()
    assert [(p.outcome, p.reason) for p in polls] == [("credentials_refused", "code_3")] * 2
    assert [p.delay for p in polls] == [INTERVAL * REFUSED_FACTOR, INTERVAL * REFUSED_FACTOR * 2]
    assert (not_enabled.outcome, not_enabled.reason) == ("credentials_refused", "code_4")
    assert _journaled(journal.path.parent) == []
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("hub")]
    assert any("credentials_refused" in line for line in ours)
    assert not any("not-the-password" in line or PASSWORD in line for line in ours)
    assert [c.user for c in fake.calls] == [USER] * 3  # the fake saw the login it was given


def _settings(data_dir: Path, url: str) -> Settings:
    return make_settings(
        data_dir,
        ecampaign_user=USER,
        ecampaign_password=PASSWORD,
        ecampaign_api_url=url,
        ecampaign_pull_interval=INTERVAL,
    )


def _shown(data_dir: Path) -> list[str]:
    """What ``hub tail`` shows: the processed events, duplicates left out."""
    return [r.envelope.id for page in journaled.pages(data_dir) for r in page.events]


async def test_the_hub_polls_and_a_restart_that_lost_the_cursor_repeats_nothing(fake, tmp_path):
    fake.reply("sms", _stop("612345678"))
    fake.blacklist("sms", Entry(_date(), code="33", number="612345678", reason="STOP SMS"))
    data_dir = tmp_path / "data"
    async with TestClient(TestServer(create_app(_settings(data_dir, fake.url)))) as client:

        async def two() -> bool:  # shown, and the poll's state written (just after)
            return len(_shown(data_dir)) == 2 and state.load(data_dir, "ecampaign").items == 2

        await eventually(two)
        status = await (await client.get("/api/v1/status", headers=OPERATOR)).json()
        [pulled] = [p for p in status["pull"] if p["provider"] == "ecampaign"]
        assert pulled["configured"] is True and pulled["items"] == 2
        page = await (await client.get("/console/overview", headers=OPERATOR)).text()
        assert 'id="pull-ecampaign"' in page
        exposition = await (await client.get("/metrics")).text()
        assert metric(exposition, "hub_pull_configured", provider="ecampaign") == 1
    # a crash between the journal and the cursor: the cursor on disk forgets every poll
    state.save(data_dir, "ecampaign", state.State())
    fake.reply("mail", Entry(_date(0), email="client@example.fr", message="Oui"))
    calls = len(fake.calls)
    async with TestClient(TestServer(create_app(_settings(data_dir, fake.url)))):

        async def three() -> bool:
            return len(_shown(data_dir)) == 3 and len(fake.calls) > calls + 2 * ROUND

        await eventually(three)
    shown = _shown(data_dir)
    raw = _journaled(data_dir)
    assert len(set(shown)) == len(shown) == 3
    assert len(raw) == 5 and set(raw) == set(shown)  # the first two again: marked duplicate


# -- the cursor policy, pure -------------------------------------------------------------------


def _source() -> EcampaignSource:
    return EcampaignSource(user="u", password="p", channels=[Channel.SMS],
                           base_url="http://api.ecampaign.prosoluce.fr", interval=60)  # fmt: skip


def _item(key: str, when: datetime | None) -> Item:
    data = EventData(provider=Provider.ECAMPAIGN, channel=Channel.SMS, kind=Kind.INBOUND,
                     state=State.RECEIVED, final=True, raw={"k": key},
                     received_at=datetime(2026, 1, 15, tzinfo=UTC))  # fmt: skip
    return Item(key, when, [Event.of(data, when)])


def test_the_mark_keeps_the_keys_near_it_and_undated_entries_while_listed() -> None:
    source = _source()
    now = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)
    old, near, newest = now - timedelta(days=2), now - timedelta(minutes=5), now
    page = Page(Outcome.ITEMS, [_item("old", old), _item("near", near), _item("new", newest),
                                _item("undated", None), _item("new", newest)])  # fmt: skip
    ask = source.ask({}, now)
    assert ask.method == "sms/getResponses" and ask.call.path.endswith("/sms/getResponses")
    assert [i.key for i in source.fresh({}, page)] == ["old", "near", "new", "undated"]
    cursor = source.advance({}, ask, page, now).cursor
    mark = cursor["marks"]["sms/getResponses"]  # type: ignore[index, call-overload]
    assert mark["mark"] == newest.isoformat()
    assert set(mark["seen"]) == {"near", "new"} and mark["untimed"] == ["undated"]
    assert cursor["next"] == "sms/getBlacklist"
    # the next read of this list: only what is new
    cursor["next"] = "sms/getResponses"
    later = Page(Outcome.ITEMS, [*page.items, _item("late", now - OVERLAP / 2),
                                 _item("undated-2", None), _item("newer", now + timedelta(1))])  # fmt: skip
    assert [i.key for i in source.fresh(cursor, later)] == ["late", "undated-2", "newer"]
    # an undated entry no longer listed is forgotten
    moved = source.advance(cursor, ask, Page(Outcome.ITEMS, [_item("x", now)]), now).cursor
    assert moved["marks"]["sms/getResponses"]["untimed"] == []  # type: ignore[index, call-overload]


def test_a_failed_list_keeps_its_mark_and_the_turn_moves_on() -> None:
    source = _source()
    now = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)
    cursor = {"next": "sms/getBlacklist", "marks": {"sms/getBlacklist": {"mark": now.isoformat()}}}
    ask = source.ask(cursor, now)
    assert ask.method == "sms/getBlacklist"
    moved = source.advance(cursor, ask, Page(Outcome.RETRY_LATER, reason="http_500"), now)
    assert moved.cursor["marks"] == cursor["marks"] and moved.cursor["next"] == "sms/getResponses"
    assert moved.again is False  # the end of the round


def test_the_settings_take_all_of_a_login_or_none_and_known_channels() -> None:
    with pytest.raises(ValueError, match="HUB_ECAMPAIGN_USER, HUB_ECAMPAIGN_PASSWORD: set all"):
        make_settings(Path("unused"), ecampaign_user=USER)
    with pytest.raises(ValueError, match="set all of them"):
        make_settings(Path("unused"), ecampaign_user=" ", ecampaign_password=PASSWORD)
    with pytest.raises(ValueError, match="channels among sms, fax, mail"):
        make_settings(Path("unused"), ecampaign_channels="sms,voice")
    assert make_settings(Path("unused"), ecampaign_channels="SMS, mail").ecampaign_channels == (
        "sms,mail"
    )


async def test_pull_once_reads_every_list_once_and_says_what_failed(fake, tmp_path):
    """``hub pull once ecampaign`` through the real entry point: a round, its new events, one
    line of outcome; refused credentials in one line, exit 1, the password not echoed."""
    fake.reply("sms", _stop("612345678", text="STOP merci"))
    fake.blacklist("mail", Entry(_date(), email="parti@example.fr", reason="désinscrit"))
    env = clean_env(tmp_path / "data")
    env.update(HUB_ECAMPAIGN_USER=USER, HUB_ECAMPAIGN_PASSWORD=PASSWORD,
               HUB_ECAMPAIGN_API_URL=fake.url)  # fmt: skip
    done = await asyncio.to_thread(run_hub, "pull", "once", "ecampaign", env=env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == "ecampaign: items: 2 new events journaled"
    assert sum("ecampaign.sms.inbound.received" in line for line in lines) == 1
    assert sum("ecampaign.mail.interaction.unsubscribed" in line for line in lines) == 1
    assert len(fake.calls) == ROUND
    refused = {**env, "HUB_ECAMPAIGN_PASSWORD": "wrong-password-1234"}
    failed = await asyncio.to_thread(run_hub, "pull", "once", "ecampaign", env=refused)
    assert failed.returncode == 1
    last = failed.stderr.splitlines()[-1]
    assert last == "ecampaign: credentials_refused (code_3): 0 new events journaled"
    assert "Traceback" not in failed.stderr
    assert "wrong-password-1234" not in failed.stdout + failed.stderr
    assert len(fake.calls) == ROUND + 1  # the round stopped at the first refusal
