"""DMC's getResponsesSMS (2.4.7): the request as the document writes it, the answers and faults
read into pages, the same event id as the push's ANSWERED, and the fake end to end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from core.models import Provider, RawRequest
from parsers import dmc as push
from parsers.pull import dmc
from parsers.pull.base import Outcome, Page
from parsers.times import PARIS
from tests.fakes.dmc import SERVICE_ID, SERVICE_PASSWORD, SPACE_ID, Fail, FakeDmc, Reply
from tests.golden import PAYLOADS
from tests.provider_docs import document
from tests.pull_http import page_of, send

RECEIVED = datetime(2026, 1, 1, tzinfo=UTC)

SEED_REQUEST = """<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"
xmlns:ser="http://servicedata.ws.dmc.sfrbt/">
  <soapenv:Header>
    <ser:authenticate>
      <servicId>123456</servicId>
      <servicePassword>654321</servicePassword>
      <spaceId>69</spaceId>
      <lang>fr_FR</lang>
    </ser:authenticate>
  </soapenv:Header>
  <soapenv:Body>
    <ser:getResponsesSMS>
      <stopOnly>>false</stopOnly>
      <beginDate>2013-09-01T00:00:00</beginDate>
      <endDate>2013-11-13T00:00:00</endDate>
    </ser:getResponsesSMS>
  </soapenv:Body>
</soapenv:Envelope>
"""
"""2.4.7's request sample, byte for byte (``>>false`` is the document's typo)."""


def _paris(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=PARIS)


def test_the_request_is_the_document_s_sample() -> None:
    call = dmc.get_responses_sms_call(
        "123456",
        "654321",
        "69",
        _paris("2013-09-01T00:00:00"),
        _paris("2013-11-13T00:00:00"),
        lang="fr_FR",
    )
    assert (call.method, call.path) == ("POST", "/SupervisionWS/getResponsesSMS")
    assert call.body.decode() == SEED_REQUEST.replace(">>false", ">false")
    assert call.content_type.startswith("text/xml") and "servicePassword" in call.secrets
    assert not call.query and not call.form  # the password is in the body only


def test_the_request_sample_stands_in_the_document() -> None:
    """Opt-in (``HUB_PROVIDER_DOCS``), like the golden seed cases."""
    assert SEED_REQUEST in document(Provider.DMC)


def test_dates_are_sent_in_french_local_time() -> None:
    begin = datetime(2026, 7, 1, 22, 0, tzinfo=UTC)
    call = dmc.get_responses_sms_call(
        "s", "p", "1", begin, begin + timedelta(hours=1), stop_only=True
    )
    assert b"<beginDate>2026-07-02T00:00:00</beginDate>" in call.body
    assert b"<stopOnly>true</stopOnly>" in call.body
    query = dmc.request_query(begin, begin, stop_only=True)
    assert (
        query == b"stopOnly=true&beginDate=2026-07-02T00%3A00%3A00&endDate=2026-07-02T00%3A00%3A00"
    )


def test_every_documented_error_code_has_an_outcome() -> None:
    documented = {
        "invalid_wave_format",
        "no_service_found",
        "no_space_found",
        "can_not_delete_has_child",
        "option_quota_overflowed",
        "option_not_present",
        "parametres_inconsistants",
        "invalid_parameter",
        "corruption_base",
    }  # 1.1.5.5, every row
    assert set(dmc.FAULTS) == documented


def test_a_polled_reply_is_the_pushed_answered_event() -> None:
    """The push's seed ANSWERED and the same reply listed by getResponsesSMS: one event id."""
    body = (PAYLOADS / "dmc" / "seed-sms-answered.body").read_bytes()
    request = RawRequest(
        provider=Provider.DMC, callback="cra", method="POST", body=body, received_at=RECEIVED
    )
    [pushed] = push.parse(request)
    listed = (
        b"<S:Envelope xmlns:S='http://schemas.xmlsoap.org/soap/envelope/'><S:Body>"
        b"<ns2:getResponsesSMSResponse xmlns:ns2='http://servicedata.ws.dmc.sfrbt/'><return><list>"
        b"<broadcastId>114453</broadcastId><callAdress>+33601020304</callAdress>"
        b"<callDate>2014-07-11T09:52:12+02:00</callDate><callResponse>OK</callResponse>"
        b"<contactId>102668605</contactId><spaceId>521</spaceId></list></return>"
        b"</ns2:getResponsesSMSResponse></S:Body></S:Envelope>"
    )
    response = RawRequest(
        provider=Provider.DMC,
        callback="getResponsesSMS",
        method="POST",
        body=listed,
        received_at=RECEIVED,
    )
    [item] = dmc.read_get_responses_sms(response).items
    [polled] = item.events
    assert polled.id == pushed.id == item.key
    same = ("provider", "channel", "kind", "state", "final", "sender", "text")
    assert {k: getattr(polled.data, k) for k in same} == {k: getattr(pushed.data, k) for k in same}
    other = listed.replace(b">OK<", b">Oui<")
    response = RawRequest(
        provider=Provider.DMC,
        callback="getResponsesSMS",
        method="POST",
        body=other,
        received_at=RECEIVED,
    )
    assert dmc.read_get_responses_sms(response).items[0].key != pushed.id


def test_the_reply_identity_ignores_the_layout_of_white_space() -> None:
    assert push.reply_identity("1", "2", "Stop\n merci") == push.reply_identity(
        " 1", "2 ", "Stop merci"
    )
    assert push.reply_identity(None, "2", "Stop") is None


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(200, None), (500, None), (401, Outcome.CREDENTIALS_REFUSED), (503, Outcome.RETRY_LATER)],
)
def test_http_statuses(status: int, outcome: Outcome | None) -> None:
    page = dmc.read_status(status)
    assert (page.outcome if page else None) is outcome


# -- the fake, end to end --------------------------------------------------------------------


class Clock:
    """The fake's minute, advanced by the test (no sleeping)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


BEGIN = datetime(2013, 10, 1, tzinfo=UTC)
END = datetime(2013, 11, 1, tzinfo=UTC)


async def _ask(
    session: aiohttp.ClientSession,
    fake: FakeDmc,
    *,
    stop_only: bool = False,
    password: str = SERVICE_PASSWORD,
    begin: datetime = BEGIN,
    end: datetime = END,
) -> Page:
    call = dmc.get_responses_sms_call(
        SERVICE_ID, password, SPACE_ID, begin, end, stop_only=stop_only
    )
    query = dmc.request_query(begin, end, stop_only=stop_only)
    status, response = await send(
        session, fake.url, call, Provider.DMC, "getResponsesSMS", query=query
    )
    return page_of(status, response, dmc.read_status, dmc.read_get_responses_sms)


def _fake_with_replies(clock: Clock) -> FakeDmc:
    fake = FakeDmc(clock=clock)
    fake.queue(
        Reply(
            "94963",
            "81074771",
            "+33617612030",
            datetime(2013, 10, 21, 15, 19, 34, tzinfo=UTC),
            "Stop toux",
            stop=True,
        )
    )
    fake.queue(
        Reply(
            "94963",
            "81074761",
            "+33617612030",
            datetime(2013, 10, 21, 8, 52, 5, tzinfo=UTC),
            "War fu please",
        )
    )
    fake.queue(
        Reply("94963", "81074762", "+33617612031", datetime(2013, 12, 2, tzinfo=UTC), "later")
    )
    return fake


async def test_replies_and_stops_of_a_period() -> None:
    clock = Clock()
    async with _fake_with_replies(clock) as fake, aiohttp.ClientSession() as session:
        page = await _ask(session, fake)
        assert page.outcome is Outcome.ITEMS
        assert [i.events[0].data.text for i in page.items] == ["Stop toux", "War fu please"]
        assert [i.time for i in page.items] == [
            fake.replies[0].call_date,
            fake.replies[1].call_date,
        ]
        assert all("stop" not in i.events[0].data.details for i in page.items)
        clock.now += 60
        stops = await _ask(session, fake, stop_only=True)
        [stop] = stops.items
        assert stop.events[0].data.details["stop"] is True
        assert stop.key == page.items[0].key  # the same reply, listed either way: one event
        assert [c.fields["stopOnly"] for c in fake.calls] == ["false", "true"]
        assert all("servicePassword" not in c.fields for c in fake.calls)
        clock.now += 60
        nothing = await _ask(
            session,
            fake,
            begin=datetime(2014, 1, 1, tzinfo=UTC),
            end=datetime(2014, 2, 1, tzinfo=UTC),
        )
        assert nothing.outcome is Outcome.NOTHING_NEW


async def test_a_second_call_within_the_minute_is_rate_limited() -> None:
    clock = Clock()
    async with _fake_with_replies(clock) as fake, aiohttp.ClientSession() as session:
        assert (await _ask(session, fake)).outcome is Outcome.ITEMS
        clock.now += 59.5
        limited = await _ask(session, fake)
        assert (limited.outcome, limited.retry_after, limited.items) == (
            Outcome.RATE_LIMITED,
            60.0,
            (),
        )
        clock.now += 60
        assert (await _ask(session, fake)).outcome is Outcome.ITEMS
        assert [c.answered for c in fake.calls] == ["list", "too_many_calls", "list"]
        assert fake.shortest_interval() == 59.5


async def test_refused_credentials() -> None:
    async with _fake_with_replies(Clock()) as fake, aiohttp.ClientSession() as session:
        page = await _ask(session, fake, password="wrong")
        assert (page.outcome, page.reason) == (Outcome.CREDENTIALS_REFUSED, "no_service_found")


async def test_a_period_too_long_is_refused_as_asked() -> None:
    async with _fake_with_replies(Clock()) as fake, aiohttp.ClientSession() as session:
        fake.max_period = timedelta(days=7)
        page = await _ask(session, fake)
        assert (page.outcome, page.reason) == (Outcome.REQUEST_REFUSED, "parametres_inconsistants")


async def test_a_failing_dmc() -> None:
    clock = Clock()
    async with _fake_with_replies(clock) as fake, aiohttp.ClientSession() as session:
        fake.fail = Fail.SERVER_ERROR
        page = await _ask(session, fake)
        assert (page.outcome, page.reason) == (Outcome.RETRY_LATER, "http_503")
        fake.fail = Fail.HANG
        call = dmc.get_responses_sms_call(SERVICE_ID, SERVICE_PASSWORD, SPACE_ID, BEGIN, END)
        with pytest.raises(TimeoutError):
            await send(session, fake.url, call, Provider.DMC, "getResponsesSMS", timeout=0.2)
        assert len(fake.calls) == 2
