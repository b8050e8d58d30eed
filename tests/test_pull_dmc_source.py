"""DMC's pull source (``hub.pull.dmc``) against its fake (``tests.fakes.dmc``), on a real journal:
one call a minute at most (the fake's record of the calls, on a clock the test moves: the
poller waits the minute on that clock instead of for real), overlapping periods read once, the
faults (refused credentials, the once-a-minute exception, a period too wide, a 503, no answer)
backing off or narrowing with nothing lost, and the hub's own task across a restart that lost
the cursor; then the cursor policy alone, pure."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import generate_latest

from core.models import Provider
from hub import journaled
from hub.app import create_app
from hub.pull import http, state
from hub.pull.dmc import MAX_WINDOW, MIN_WINDOW, OVERLAP, DmcSource
from hub.pull.poller import REFUSED_FACTOR, Poller
from hub.settings import Settings
from parsers.pull import dmc as api
from parsers.pull.base import Item, Outcome, Page
from sinks import journal as store
from sinks.journal import Journal
from tests.fakes.dmc import MINUTE, SERVICE_ID, SERVICE_PASSWORD, SPACE_ID, Fail, FakeDmc, Reply
from tests.pull_http import send
from tests.pull_poller import poller
from tests.support import OPERATOR, eventually, make_settings, metric

INTERVAL = 60.0


class Clock:
    """Epoch seconds that move only when the poller waits (``sleep``): DMC's minute, and the
    source's now, without waiting them."""

    def __init__(self) -> None:
        self.now = time.time()
        self.slept: list[float] = []

    def time(self) -> float:
        return self.now

    def utc(self) -> datetime:
        return datetime.fromtimestamp(self.now, UTC)

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)  # a turn of the loop, as a real sleep gives


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def fake(clock: Clock) -> AsyncIterator[FakeDmc]:
    async with FakeDmc(clock=clock.time) as served:
        yield served


def _poller(
    journal: Journal,
    fake: FakeDmc,
    session: aiohttp.ClientSession,
    clock: Clock,
    password: str = SERVICE_PASSWORD,
    stop_only: bool = False,
) -> Poller:
    source = DmcSource(service_id=SERVICE_ID, service_password=password, space_id=SPACE_ID,
                       stop_only=stop_only, base_url=fake.url, interval=INTERVAL)  # fmt: skip
    return poller(source, journal, session, clock=clock.time, sleep=clock.sleep)


def _reply(clock: Clock, n: int, minutes_ago: float = 2, text: str = "", stop: bool = False):
    when = clock.utc() - timedelta(minutes=minutes_ago)
    return Reply(f"b{n}", f"c{n}", "+33601020304", when.replace(microsecond=0),
                 text or f"oui {n}", stop=stop)  # fmt: skip


def _journaled(data_dir: Path) -> list[str]:
    return [r.envelope.id for r in store.select(data_dir / store.JOURNAL_FILE, limit=1000)]


def _exposition(poller: Poller) -> str:
    return generate_latest(poller.metrics.registry).decode()


async def test_one_call_a_minute_and_each_reply_journaled_once(fake, journal, clock):
    fake.queue(_reply(clock, 1))
    fake.queue(_reply(clock, 2, text="STOP", stop=True))
    async with aiohttp.ClientSession() as session:
        poller = _poller(journal, fake, session, clock)
        first = await poller.poll()
        second = await poller.poll()  # the overlap: read again, not journaled again
        fake.queue(_reply(clock, 3, minutes_ago=0))
        # a restart: a new poller, the cursor and the last call's time from the disk
        third = await _poller(journal, fake, session, clock).poll()
    assert (first.outcome, len(first.events), first.delay) == ("items", 2, INTERVAL)
    assert (second.outcome, second.events) == ("items", [])
    assert [e.data.text for e in third.events] == ["oui 3"]
    assert {e.data.details["via"] for e in first.events} == {"poll"}
    assert [c.answered for c in fake.calls] == ["list"] * 3
    assert fake.shortest_interval() is not None and fake.shortest_interval() >= MINUTE
    assert clock.slept and all(s <= MINUTE for s in clock.slept)  # waited the minute, no more
    assert {c.fields["stopOnly"] for c in fake.calls} == {"false"}  # one call for every reply
    assert {c.fields["servicId"] for c in fake.calls} == {SERVICE_ID}
    data_dir = journal.path.parent
    assert sorted(_journaled(data_dir)) == sorted(e.id for e in first.events + third.events)
    begin = [datetime.fromisoformat(c.fields["beginDate"]) for c in fake.calls]
    end = [datetime.fromisoformat(c.fields["endDate"]) for c in fake.calls]
    assert begin[1] <= end[0] - OVERLAP + timedelta(seconds=1)  # the periods overlap
    saved = state.load(data_dir, "dmc")
    assert saved.items == 3 and saved.failures == 0 and len(saved.cursor["seen"]) == 3  # type: ignore[arg-type]


async def test_stop_only_asks_for_the_stops_and_marks_them(fake, journal, clock):
    fake.queue(_reply(clock, 1))
    fake.queue(_reply(clock, 2, text="STOP", stop=True))
    async with aiohttp.ClientSession() as session:
        polled = await _poller(journal, fake, session, clock, stop_only=True).poll()
    assert [(e.data.text, e.data.details.get("stop")) for e in polled.events] == [("STOP", True)]
    assert fake.calls[0].fields["stopOnly"] == "true"


async def test_the_once_a_minute_fault_waits_the_minute_and_loses_nothing(fake, journal, clock):
    fake.queue(_reply(clock, 1))
    async with aiohttp.ClientSession() as session:
        # another client of the account calls DMC first: ours comes within its minute
        at = clock.utc()
        other = api.get_responses_sms_call(SERVICE_ID, SERVICE_PASSWORD, SPACE_ID, at, at)
        await send(session, fake.url, other, Provider.DMC, "getResponsesSMS")
        poller = _poller(journal, fake, session, clock)
        limited = await poller.poll()
        polled = await poller.poll()
    assert (limited.outcome, limited.reason, limited.retry_after) == (
        "rate_limited",
        "once_a_minute",
        60.0,
    )
    assert limited.delay >= MINUTE
    assert (polled.outcome, len(polled.events)) == ("items", 1)
    assert [c.answered for c in fake.calls] == ["list", "too_many_calls", "list"]
    assert fake.calls[2].at - fake.calls[1].at >= MINUTE  # ours: a minute apart
    exposition = _exposition(poller)
    assert metric(exposition, "hub_pull_errors_total", provider="dmc", outcome="rate_limited",
                  reason="once_a_minute") == 1  # fmt: skip


async def test_a_period_too_wide_is_narrowed_until_dmc_gives_it(fake, journal, clock):
    """After three hours off, DMC giving 30 minutes at most: the period halves at each refusal,
    a minute apart, then the source catches up period by period, a minute apart."""
    fake.max_period = timedelta(minutes=30)
    replies = [fake.queue(_reply(clock, n, minutes_ago=m)) for n, m in enumerate((170, 95, 20, 1))]
    data_dir = journal.path.parent
    since = clock.utc() - timedelta(hours=3)
    state.save(data_dir, "dmc", state.State(cursor={"since": since.isoformat()}))
    async with aiohttp.ClientSession() as session:
        poller = _poller(journal, fake, session, clock)
        polls = [await poller.poll()]
        while polls[-1].again and len(polls) < 40:
            polls.append(await poller.poll())
    refused = [p for p in polls if p.outcome == "request_refused"]
    assert [p.reason for p in refused] == ["parametres_inconsistants"] * 6  # 24 h to 22.5 min
    assert all(p.delay == MINUTE for p in polls[:-1])  # no back-off: a narrower period at once
    assert polls[-1].outcome == "items" and not polls[-1].again
    assert sorted(_journaled(data_dir)) == sorted(e.id for p in polls for e in p.events) and len(
        _journaled(data_dir)
    ) == len(replies)
    assert fake.shortest_interval() >= MINUTE  # type: ignore[operator]
    assert "width" not in state.load(data_dir, "dmc").cursor  # caught up: forgotten
    exposition = _exposition(poller)
    assert metric(exposition, "hub_pull_errors_total", provider="dmc",
                  reason="parametres_inconsistants") == 6  # fmt: skip


async def test_refused_credentials_a_503_and_no_answer_back_off_and_lose_nothing(
    fake, journal, clock, caplog, monkeypatch
):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setattr(http, "TIMEOUT", aiohttp.ClientTimeout(total=0.3))  # not 60 s here
    fake.queue(_reply(clock, 1))
    async with aiohttp.ClientSession() as session:
        refused = await _poller(journal, fake, session, clock, password="not-it").poll()
        poller = _poller(journal, fake, session, clock)
        fake.fail = Fail.SERVER_ERROR
        unavailable = [await poller.poll() for _ in range(2)]
        fake.fail = Fail.HANG
        hung = await poller.poll()
        fake.fail = None
        polled = await poller.poll()
    assert (refused.outcome, refused.reason) == ("credentials_refused", "no_service_found")
    assert refused.delay == INTERVAL * REFUSED_FACTOR
    assert [(p.outcome, p.reason) for p in [*unavailable, hung]] == [
        ("retry_later", "http_503"),
        ("retry_later", "http_503"),
        ("retry_later", "timeout"),
    ]
    # failures in a row, the refused credentials the first: doubling from there
    assert [p.delay for p in [*unavailable, hung]] == [2 * INTERVAL, 4 * INTERVAL, 8 * INTERVAL]
    assert (polled.outcome, len(polled.events)) == ("items", 1)
    assert fake.shortest_interval() >= MINUTE  # type: ignore[operator]
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("hub")]
    assert any("credentials_refused" in line for line in ours)
    assert not any("not-it" in line or SERVICE_PASSWORD in line for line in ours)


def test_the_interval_cannot_go_under_the_minute() -> None:
    with pytest.raises(ValueError, match="greater than or equal to 60"):
        make_settings(Path("unused"), dmc_pull_interval=10)
    source = DmcSource(service_id="s", service_password="p", space_id="1",
                       base_url="http://127.0.0.1:9", interval=1)  # fmt: skip
    assert (source.minimum, source.interval) == (60.0, 60.0)


def _settings(data_dir: Path, url: str) -> Settings:
    return make_settings(data_dir, dmc_service_id=SERVICE_ID, dmc_service_password=SERVICE_PASSWORD,
                         dmc_space_id=SPACE_ID, dmc_api_url=url)  # fmt: skip


def _shown(data_dir: Path) -> list[str]:
    """What ``hub tail`` shows: the processed events, duplicates left out."""
    return [r.envelope.id for page in journaled.pages(data_dir) for r in page.events]


async def test_the_hub_polls_and_a_restart_that_lost_the_cursor_repeats_nothing(tmp_path):
    """The hub's own task, on real clocks: one poll per start (the next would be a minute
    later). Between the two starts a minute passes for DMC (the fake's clock is moved) and the
    cursor is lost (a crash between the journal and the state): the replies read again are
    marked duplicate."""
    offset = [0.0]
    fake = FakeDmc(clock=lambda: time.monotonic() + offset[0])
    at = datetime.now(UTC).replace(microsecond=0)
    fake.queue(Reply("b1", "c1", "+33601020304", at - timedelta(minutes=2), "oui"))
    fake.queue(Reply("b2", "c2", "+33601020305", at - timedelta(minutes=1), "STOP", stop=True))
    data_dir = tmp_path / "data"
    async with fake:
        async with TestClient(TestServer(create_app(_settings(data_dir, fake.url)))) as client:

            async def two() -> bool:  # shown, and the poll's state written (just after)
                return len(_shown(data_dir)) == 2 and state.load(data_dir, "dmc").items == 2

            await eventually(two)
            status = await (await client.get("/api/v1/status", headers=OPERATOR)).json()
            [pulled] = [p for p in status["pull"] if p["provider"] == "dmc"]
            assert pulled["configured"] is True and pulled["outcome"] == "items"
            page = await (await client.get("/console/overview", headers=OPERATOR)).text()
            assert 'id="pull-dmc"' in page
        state.save(data_dir, "dmc", state.State())  # the crash: last call and cursor lost
        offset[0] += MINUTE
        fake.queue(Reply("b3", "c3", "+33601020306", at, "non"))
        async with TestClient(TestServer(create_app(_settings(data_dir, fake.url)))):

            async def three() -> bool:
                return len(_shown(data_dir)) == 3

            await eventually(three)
    shown, raw = _shown(data_dir), _journaled(data_dir)
    assert len(set(shown)) == len(shown) == 3
    assert len(raw) == 5 and set(raw) == set(shown)  # the first two again: marked duplicate
    assert [c.answered for c in fake.calls] == ["list", "list"]


# -- the cursor policy, pure -------------------------------------------------------------------


def _source() -> DmcSource:
    return DmcSource(service_id="s", service_password="p", space_id="1",
                     base_url="https://www.dmc.sfr-sh.fr/DmcWS/1.5.6", interval=60)  # fmt: skip


def test_the_first_period_and_the_query_the_reader_is_given() -> None:
    now = datetime(2026, 1, 15, 9, 30, 20, tzinfo=UTC)
    ask = _source().ask({}, now)
    assert ask.until == now and ask.method == "getResponsesSMS"
    assert (
        ask.query
        == b"stopOnly=false&beginDate=2026-01-15T10%3A20%3A20&endDate=2026-01-15T10%3A30%3A20"
    )
    assert b"<servicePassword>p</servicePassword>" in ask.call.body


def test_narrowing_halves_down_to_the_floor_and_is_forgotten_once_caught_up() -> None:
    source = _source()
    now = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)
    cursor: dict = {"since": (now - timedelta(days=3)).isoformat()}
    widths = []
    refused = Page(Outcome.REQUEST_REFUSED, reason="parametres_inconsistants")
    while True:
        moved = source.advance(cursor, source.ask(cursor, now), refused, now)
        if not moved.again:
            break
        cursor = moved.cursor
        widths.append(cursor["width"])
    assert widths[0] == MAX_WINDOW.total_seconds() / 2 and widths[-1] == MIN_WINDOW.total_seconds()
    assert moved.cursor == cursor  # at the floor: unchanged, the poller's back-off
    other = Page(Outcome.REQUEST_REFUSED, reason="option_not_present")
    assert source.advance(cursor, source.ask(cursor, now), other, now).cursor == cursor
    ask = source.ask(cursor, now)
    assert ask.until is not None and ask.until - (now - timedelta(days=3)) < MIN_WINDOW
    caught = source.advance(cursor, ask, Page(Outcome.NOTHING_NEW), now)
    assert caught.again and caught.cursor["width"] == MIN_WINDOW.total_seconds()
    last = {"since": (now - timedelta(minutes=1)).isoformat(), "width": 600.0}
    done = source.advance(last, source.ask(last, now), Page(Outcome.NOTHING_NEW), now)
    assert not done.again and "width" not in done.cursor


def test_the_autumn_hour_read_twice_still_gives_a_period_dmc_reads_forward() -> None:
    """02:55 summer time to 02:05 winter time would be an end before the beginning on DMC's
    wall clock: the beginning goes back an hour."""
    since = datetime(2024, 10, 27, 1, 4, tzinfo=UTC)  # 02:04 winter time
    now = datetime(2024, 10, 27, 1, 5, tzinfo=UTC)
    ask = _source().ask({"since": since.isoformat()}, now)
    assert b"<beginDate>2024-10-27T01:54:00</beginDate>" in ask.call.body
    assert b"<endDate>2024-10-27T02:05:00</endDate>" in ask.call.body


def test_fresh_leaves_out_the_replies_remembered_and_a_repeat_in_the_page() -> None:
    """``hub.pull.source.unseen``, DMC's ``fresh`` as sMsmode's: the keys the cursor's ``seen``
    holds are left out, a key the page gives twice is kept once, the order kept."""
    now = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)
    cursor: dict = {"since": now.isoformat(), "seen": {"a": now.isoformat(), "b": 3}}
    items = [Item(k, now, []) for k in ("c", "a", "b", "c", "d")]
    assert [i.key for i in _source().fresh(cursor, Page(Outcome.ITEMS, items))] == ["c", "b", "d"]
    assert [i.key for i in _source().fresh({}, Page(Outcome.ITEMS, items[:2]))] == ["c", "a"]
