"""eCall's pull source (``hub.pull.ecall``) against its fake (``tests.fakes.ecall``), on a real
journal: one poll at a time (``hub.pull.poller.Poller``), a deletion only once the event is
durable, failures that back off and lose nothing; and the hub's own tasks (``hub.app``) across
a restart."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import generate_latest

from core.errors import SinkUnavailable
from hub import journaled
from hub.app import create_app
from hub.pull import http, state
from hub.pull.ecall import EcallSource
from hub.pull.poller import REFUSED_FACTOR, Poller
from hub.settings import Settings
from sinks import journal as store
from sinks.journal import Journal
from tests.fakes.ecall import PASSWORD, USERNAME, BufferedSms, Fail, FakeEcall
from tests.pull_poller import poller
from tests.support import OPERATOR, event, eventually, make_settings, metric

INTERVAL = 0.1
_CAP = 1_000_000


def _sms(text: str, sender: str = "0041791234567") -> BufferedSms:
    return BufferedSms("0041766012999", sender, text, "11.12.2025 10:37:00")


@pytest.fixture
async def fake() -> AsyncIterator[FakeEcall]:
    async with FakeEcall() as served:
        yield served


class Crowded:
    """What else takes room beside the journal, as its cap counts it (as the pipeline worker's
    files do): the journal may not grow past the cap less that."""

    def __init__(self) -> None:
        self.bytes = 0

    def __call__(self) -> int:
        return self.bytes


@pytest.fixture
async def crowded() -> Crowded:
    return Crowded()


@pytest.fixture
async def journal(tmp_path: Path, crowded: Crowded) -> AsyncIterator[Journal]:
    opened = Journal.open(tmp_path / "data", max_bytes=_CAP, also_counted=crowded)
    try:
        yield opened
    finally:
        opened.close()


def _poller(
    journal: Journal, fake: FakeEcall, session: aiohttp.ClientSession, password: str = PASSWORD
) -> Poller:
    source = EcallSource(username=USERNAME, password=password, base_url=fake.url, interval=INTERVAL)
    return poller(source, journal, session)


def _journaled(data_dir: Path) -> list[str]:
    """The message ids of the raw journal, duplicates included, in order."""
    rows = store.select(data_dir / store.JOURNAL_FILE, limit=1000)
    return [str(r.event().data.message_id) for r in rows]


def _asked(fake: FakeEcall) -> list[tuple[str, str]]:
    return [(c.path.rpartition("/")[2], c.query.get("messageid", "")) for c in fake.calls]


def _exposition(poller: Poller) -> str:
    return generate_latest(poller.metrics.registry).decode()


async def test_the_buffer_is_read_on_and_each_message_deleted_once_journaled(fake, journal):
    first, second = fake.queue(_sms("Oui")), fake.queue(_sms("Non", "0041797654321"))
    data_dir = journal.path.parent
    async with aiohttp.ClientSession() as session:
        poller = _poller(journal, fake, session)
        one = await poller.poll()
        assert (one.outcome, one.items, one.again, one.delay) == ("items", 1, True, 0.0)
        [event] = one.events
        assert (event.data.message_id, event.data.text) == (first.message_id, "Oui")
        assert event.data.sender == "+41791234567" and event.data.details["via"] == "poll"
        assert _journaled(data_dir) == [first.message_id]
        assert fake.buffer == [second]
        two = await poller.poll()
        assert [e.data.text for e in two.events] == ["Non"] and two.again
        empty = await poller.poll()
    assert (empty.outcome, empty.reason, empty.events) == ("nothing_new", "code_11204", [])
    assert (empty.again, empty.delay) == (False, INTERVAL)  # the interval, not at once
    assert fake.buffer == []
    assert _asked(fake) == [
        ("GetNextMessage", ""),
        ("DeleteMessage", first.message_id),
        ("GetNextMessage", ""),
        ("DeleteMessage", second.message_id),
        ("GetNextMessage", ""),
    ]
    assert all(c.query["password"] == PASSWORD for c in fake.calls)
    assert _journaled(data_dir) == [first.message_id, second.message_id]
    saved = state.load(data_dir, "ecall")
    assert (saved.items, saved.outcome, saved.failures) == (2, "nothing_new", 0)
    assert saved.cursor == {"last_deleted": second.message_id}
    assert EcallSource.describe(saved.cursor).endswith(second.message_id)
    exposition = _exposition(poller)
    assert metric(exposition, "hub_pull_items_total", provider="ecall") == 2
    assert metric(exposition, "hub_pull_polls_total", provider="ecall", outcome="nothing_new") == 1


async def test_the_deletion_is_sent_only_once_the_event_is_durable(fake, journal):
    """The deletion held by the fake (as if the hub died while sending it): by the time it was
    sent, the event was in the journal; the poll that never completed leaves the message in the
    buffer, read again by the next poll: the same event id, journaled a second time, deleted."""
    sms = fake.queue(_sms("Oui"))
    data_dir = journal.path.parent
    fake.hold_deletes = True
    async with aiohttp.ClientSession() as session:
        poller = _poller(journal, fake, session)
        polling = asyncio.create_task(poller.poll())

        async def deleting() -> bool:
            return bool(fake.deletes())

        await eventually(deleting)
        assert _journaled(data_dir) == [sms.message_id]  # durable before the deletion left
        polling.cancel()  # the hub gone mid-deletion
        with pytest.raises(asyncio.CancelledError):
            await polling
        assert fake.buffer == [sms]
        fake.hold_deletes = False
        again = await poller.poll()
        assert again.outcome == "items" and again.events[0].data.message_id == sms.message_id
    assert fake.buffer == []
    rows = store.select(data_dir / store.JOURNAL_FILE, limit=10)
    assert [r.envelope.id for r in rows] == [again.events[0].id] * 2  # at most twice, one id


async def test_a_journal_that_cannot_commit_deletes_nothing(fake, journal, crowded):
    """The journal past its cap refuses the event: no DeleteMessage is sent, the message stays
    in the buffer, the source backs off and says why; once there is room, it is journaled and
    only then deleted."""
    sms = fake.queue(_sms("Oui"))
    crowded.bytes = _CAP // 2
    await _fill(journal)
    filled = len(_journaled(journal.path.parent))
    async with aiohttp.ClientSession() as session:
        poller = _poller(journal, fake, session)
        refused = [await poller.poll() for _ in range(2)]
        assert [(p.outcome, p.events) for p in refused] == [("journal_unavailable", [])] * 2
        assert [p.delay for p in refused] == [INTERVAL, 2 * INTERVAL]
        assert fake.deletes() == [] and fake.buffer == [sms]
        assert len(_journaled(journal.path.parent)) == filled
        exposition = _exposition(poller)
        assert metric(exposition, "hub_pull_errors_total", provider="ecall",
                      outcome="journal_unavailable") == 2  # fmt: skip
        crowded.bytes = 0  # room again

        async def room() -> bool:
            return journal.trouble is None

        await eventually(room)
        polled = await poller.poll()
    assert polled.outcome == "items" and polled.state.failures == 0
    assert _asked(fake)[-1] == ("DeleteMessage", sms.message_id) and fake.buffer == []
    assert _journaled(journal.path.parent)[filled:] == [sms.message_id]


async def _fill(journal: Journal) -> None:
    """Events appended until the journal takes no more, not even one."""
    n = 0
    for batch in (50, 1):
        while True:
            try:
                await journal.append([event(i) for i in range(n, n + batch)])
            except SinkUnavailable:
                break
            n += batch
    assert n > 0 and journal.trouble == "journal_full"


@pytest.mark.parametrize(
    ("fail", "outcome", "reason", "first_delay"),
    [
        (Fail.CREDENTIALS, "credentials_refused", "http_401", INTERVAL * REFUSED_FACTOR),
        (Fail.TECHNICAL_PROBLEM, "retry_later", "code_11903", INTERVAL),
        (Fail.SERVER_ERROR, "retry_later", "http_500", INTERVAL),
        (Fail.HANG, "retry_later", "timeout", INTERVAL),
    ],
)
async def test_a_failing_ecall_backs_off_and_loses_nothing(
    fake, journal, monkeypatch, caplog, fail, outcome, reason, first_delay
):
    monkeypatch.setattr(http, "TIMEOUT", aiohttp.ClientTimeout(total=0.5))  # a hung eCall
    caplog.set_level(logging.INFO)
    sms = fake.queue(_sms("Oui"))
    fake.fail = fail
    async with aiohttp.ClientSession() as session:
        poller = _poller(journal, fake, session)
        failed = [await poller.poll() for _ in range(2)]
        assert [(p.outcome, p.reason) for p in failed] == [(outcome, reason)] * 2
        assert [p.delay for p in failed] == [first_delay, 2 * first_delay]
        assert fake.deletes() == [] and fake.buffer == [sms]
        exposition = _exposition(poller)
        assert metric(exposition, "hub_pull_errors_total", provider="ecall", reason=reason) == 2
        fake.fail = None
        polled = await poller.poll()
    assert [e.data.message_id for e in polled.events] == [sms.message_id]
    assert fake.buffer == [] and _journaled(journal.path.parent) == [sms.message_id]
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("hub")]
    assert ours and not any(PASSWORD in line or "Oui" in line for line in ours)


async def test_wrong_credentials_are_refused_and_never_logged(fake, journal, caplog):
    caplog.set_level(logging.INFO)
    fake.queue(_sms("Oui"))
    async with aiohttp.ClientSession() as session:
        polled = await _poller(journal, fake, session, password="not-the-password").poll()
    assert (polled.outcome, polled.reason) == ("credentials_refused", "http_401")
    assert len(fake.buffer) == 1
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("hub")]
    assert any("credentials_refused" in line for line in ours)
    assert not any("not-the-password" in line for line in ours)


# -- the hub's own tasks -----------------------------------------------------------------------


def _settings(data_dir: Path, fake: FakeEcall) -> Settings:
    return make_settings(
        data_dir,
        ecall_username=USERNAME,
        ecall_password=PASSWORD,
        ecall_api_url=fake.url,
        ecall_pull_interval=INTERVAL,
    )


def _shown(data_dir: Path) -> list[str]:
    """What ``hub tail`` shows: the processed events, duplicates left out (message ids)."""
    return [
        str(r.event().data.message_id) for page in journaled.pages(data_dir) for r in page.events
    ]


async def test_the_hub_empties_the_buffer_and_a_restart_repeats_nothing(fake, tmp_path):
    data_dir = tmp_path / "data"
    queued = [fake.queue(_sms(f"oui {n}")).message_id for n in range(3)]
    async with TestClient(TestServer(create_app(_settings(data_dir, fake)))) as client:

        async def three() -> bool:
            return sorted(_shown(data_dir)) == queued and not fake.buffer

        await eventually(three)
        status = await (await client.get("/api/v1/status", headers=OPERATOR)).json()
        pulled = next(p for p in status["pull"] if p["provider"] == "ecall")
        assert (pulled["configured"], pulled["items"]) == (True, 3)
        page = await (await client.get("/console/overview", headers=OPERATOR)).text()
        assert 'id="pull-ecall"' in page and "3 items journaled" in page
        exposition = await (await client.get("/metrics")).text()
        assert metric(exposition, "hub_pull_configured", provider="ecall") == 1
    later = fake.queue(_sms("oui 3")).message_id
    polled_before = len(fake.calls)
    async with TestClient(TestServer(create_app(_settings(data_dir, fake)))):

        async def four() -> bool:
            # the fourth deleted, and the empty buffer asked again since
            return len(_shown(data_dir)) == 4 and len(fake.calls) > polled_before + 3

        await eventually(four)
    assert sorted(_shown(data_dir)) == sorted([*queued, later])
    assert sorted(_journaled(data_dir)) == sorted([*queued, later])  # nothing journaled twice
    assert [m for _, m in _asked(fake) if m] == [*queued, later]  # each deleted once


async def test_one_credential_alone_is_a_configuration_error(tmp_path):
    with pytest.raises(ValueError, match="HUB_ECALL_USERNAME and HUB_ECALL_PASSWORD go together"):
        make_settings(tmp_path, ecall_username=USERNAME)
    with pytest.raises(ValueError, match="HUB_ECALL_PASSWORD is set but empty"):
        make_settings(tmp_path, ecall_username=USERNAME, ecall_password=" ")
    with pytest.raises(ValueError, match="base address"):
        make_settings(tmp_path, ecall_api_url="url.ecall.ch")
    assert make_settings(tmp_path).ecall_api_url == "https://url.ecall.ch"
