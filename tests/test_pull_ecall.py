"""eCall's buffer (3.6): the requests as the document writes them, the answers read into pages,
the same inbound event as the ``Answer`` callback, and the fake end to end over loopback."""

from __future__ import annotations

from datetime import UTC, datetime

import aiohttp
import pytest

from core.models import Event, Provider, RawRequest
from parsers import ecall as push
from parsers.pull import ecall
from parsers.pull.base import Outcome, Page
from tests.fakes.ecall import PASSWORD, USERNAME, BufferedSms, Fail, FakeEcall
from tests.golden import PAYLOADS
from tests.pull_http import page_of, send

RECEIVED = datetime(2026, 1, 1, tzinfo=UTC)


def test_requests_are_the_documented_ones_with_their_secrets_named() -> None:
    call = ecall.get_next_message_call("xxx", "yyy", "+41763331111")
    assert (call.method, call.path) == ("GET", "/Api/Cache/GetNextMessage")
    assert call.query == (
        ("Username", "xxx"),
        ("Password", "yyy"),
        ("MobileNumber", "+41763331111"),
    )
    delete = ecall.delete_message_call("xxx", "yyy", "123abc")
    assert (delete.method, delete.path) == ("GET", "/Api/Cache/DeleteMessage")
    assert delete.query == (("UserName", "xxx"), ("Password", "yyy"), ("MessageID", "123abc"))
    for c in (call, delete):
        assert {k for k, _ in c.query if k in c.secrets} == {k for k, _ in c.query} - {
            "MobileNumber",
            "MessageID",
        }


def test_every_documented_result_code_has_an_outcome() -> None:
    documented = {
        "0",
        "11100",
        "11101",
        "11102",
        "11200",
        "11201",
        "11204",
        "11222",
        "11223",
        "11224",
        "11301",
        "11500",
        "11501",
        "11701",
        "11800",
        "11903",
        "11907",
    }  # table 4.2, every row
    assert set(ecall.RESULTS) == documented
    assert ecall.RESULTS["11204"] is Outcome.NOTHING_NEW


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, None),
        (400, None),
        (401, Outcome.CREDENTIALS_REFUSED),
        (403, Outcome.RETRY_LATER),
        (500, Outcome.RETRY_LATER),
        (503, Outcome.RETRY_LATER),
    ],
)
def test_http_statuses_of_4_1(status: int, outcome: Outcome | None) -> None:
    page = ecall.read_status(status)
    assert (page.outcome if page else None) is outcome


def _answer_event() -> Event:
    query = (PAYLOADS / "ecall" / "seed-answer.query").read_bytes()
    request = RawRequest(
        provider=Provider.ECALL, callback="answer", method="GET", query=query, received_at=RECEIVED
    )
    [event] = push.parse(request)
    return event


def test_a_buffered_sms_is_the_event_the_answer_callback_gives() -> None:
    """The seed's Answer sample and the same SMS read from the buffer: the same vocabulary and
    fields; the poll adds the buffer's id, says ``via: poll``, and keeps its own raw fields."""
    body = (
        b"<IncomingSMS><Result><ResultCode>0</ResultCode><ResultText>OK</ResultText></Result>"
        b"<MessageID>123abc</MessageID><SMS><Message>Meine Anwort</Message>"
        b"<AddressTo>0041766012999</AddressTo><AddressFrom>0041791234567</AddressFrom>"
        b"<TimeStamp>11.12.2015 10:37:00</TimeStamp></SMS></IncomingSMS>"
    )
    response = RawRequest(
        provider=Provider.ECALL,
        callback="GetNextMessage",
        method="GET",
        body=body,
        received_at=RECEIVED,
    )
    page = ecall.read_get_next_message(response)
    [item] = page.items
    [polled] = item.events
    pushed = _answer_event()
    assert item.key == "123abc" and item.time == pushed.time
    same = ("provider", "channel", "kind", "state", "final", "recipient", "sender", "text")
    assert {k: getattr(polled.data, k) for k in same} == {k: getattr(pushed.data, k) for k in same}
    assert (polled.type, polled.source, polled.time) == (pushed.type, pushed.source, pushed.time)
    assert polled.data.message_id == "123abc" and polled.data.details == {"via": "poll"}
    assert polled.data.raw["Message"] == pushed.data.raw["Message"]


def test_the_event_id_is_the_message_id_s() -> None:
    """Read twice (a crash before DeleteMessage), the same message gives the same event, and
    another reception time does not change it."""

    def read(message_id: str, at: datetime) -> str:
        body = (
            "<IncomingSMS><Result><ResultCode>0</ResultCode></Result>"
            f"<MessageID>{message_id}</MessageID><SMS><Message>x</Message><AddressTo>1</AddressTo>"
            "<AddressFrom>2</AddressFrom><TimeStamp>11.12.2015 10:37:00</TimeStamp></SMS></IncomingSMS>"
        ).encode()
        response = RawRequest(
            provider=Provider.ECALL,
            callback="GetNextMessage",
            method="GET",
            body=body,
            received_at=at,
        )
        return ecall.read_get_next_message(response).items[0].events[0].id

    assert read("a1", RECEIVED) == read("a1", datetime(2027, 5, 1, tzinfo=UTC))
    assert read("a1", RECEIVED) != read("a2", RECEIVED)


# -- the fake, end to end --------------------------------------------------------------------


async def _next(session: aiohttp.ClientSession, fake: FakeEcall, **kw: str) -> Page:
    call = ecall.get_next_message_call(
        kw.get("user", USERNAME), kw.get("password", PASSWORD), kw.get("number", "")
    )
    status, response = await send(session, fake.url, call, Provider.ECALL, "GetNextMessage")
    assert b"Password" not in response.query and PASSWORD.encode() not in response.query
    return page_of(status, response, ecall.read_status, ecall.read_get_next_message)


async def _delete(session: aiohttp.ClientSession, fake: FakeEcall, message_id: str) -> Page:
    call = ecall.delete_message_call(USERNAME, PASSWORD, message_id)
    status, response = await send(session, fake.url, call, Provider.ECALL, "DeleteMessage")
    return page_of(status, response, ecall.read_status, ecall.read_delete_message)


async def test_the_buffer_is_read_oldest_first_and_emptied_only_by_delete() -> None:
    async with FakeEcall() as fake, aiohttp.ClientSession() as session:
        first = fake.queue(
            BufferedSms("0041766012999", "0041791234567", "Oui", "11.12.2015 10:37:00")
        )
        fake.queue(BufferedSms("0041766012999", "0041797654321", "Non", "11.12.2015 10:38:00"))
        page = await _next(session, fake)
        assert page.outcome is Outcome.ITEMS and page.more
        assert [i.key for i in page.items] == [first.message_id]
        assert page.items[0].events[0].data.text == "Oui"
        again = await _next(session, fake)  # not deleted: the same message again
        assert [e.id for e in again.items[0].events] == [e.id for e in page.items[0].events]
        assert (await _delete(session, fake, first.message_id)).outcome is Outcome.NOTHING_NEW
        assert (await _next(session, fake)).items[0].events[0].data.text == "Non"
        deleted_twice = await _delete(session, fake, first.message_id)
        assert (deleted_twice.outcome, deleted_twice.reason) == (
            Outcome.REQUEST_REFUSED,
            "code_11501",
        )
        await _delete(session, fake, fake.buffer[0].message_id)
        empty = await _next(session, fake)
        assert (empty.outcome, empty.reason, empty.items) == (Outcome.NOTHING_NEW, "code_11204", ())
        assert [c.path for c in fake.calls].count("/Api/Cache/DeleteMessage") == 3


async def test_one_rented_number_s_messages() -> None:
    async with FakeEcall() as fake, aiohttp.ClientSession() as session:
        fake.queue(BufferedSms("0041766012999", "0041791234567", "A", "11.12.2015 10:37:00"))
        fake.queue(BufferedSms("0041763332020", "0041791234567", "B", "11.12.2015 10:38:00"))
        page = await _next(session, fake, number="0763332020")
        assert page.items[0].events[0].data.text == "B"
        assert fake.calls[-1].query["mobilenumber"] == "0763332020"


@pytest.mark.parametrize(
    ("fail", "outcome", "reason"),
    [
        (Fail.CREDENTIALS, Outcome.CREDENTIALS_REFUSED, "http_401"),
        (Fail.TECHNICAL_PROBLEM, Outcome.RETRY_LATER, "code_11903"),
        (Fail.SERVER_ERROR, Outcome.RETRY_LATER, "http_500"),
    ],
)
async def test_a_failing_ecall(fail: Fail, outcome: Outcome, reason: str) -> None:
    async with FakeEcall() as fake, aiohttp.ClientSession() as session:
        fake.queue(BufferedSms("0041766012999", "0041791234567", "Oui", "11.12.2015 10:37:00"))
        fake.fail = fail
        page = await _next(session, fake)
        assert (page.outcome, page.reason, page.items) == (outcome, reason, ())
        delete = await _delete(session, fake, fake.buffer[0].message_id)
        assert delete.outcome is outcome and len(fake.buffer) == 1  # nothing lost
        fake.fail = None
        assert (await _next(session, fake)).outcome is Outcome.ITEMS


async def test_wrong_credentials_are_refused() -> None:
    async with FakeEcall() as fake, aiohttp.ClientSession() as session:
        page = await _next(session, fake, password="wrong")
        assert page.outcome is Outcome.CREDENTIALS_REFUSED


async def test_an_ecall_that_does_not_answer_times_the_client_out() -> None:
    async with FakeEcall() as fake, aiohttp.ClientSession() as session:
        fake.fail = Fail.HANG
        call = ecall.get_next_message_call(USERNAME, PASSWORD)
        with pytest.raises(TimeoutError):
            await send(session, fake.url, call, Provider.ECALL, "GetNextMessage", timeout=0.2)
        assert len(fake.calls) == 1
