"""eCampaign's feedback methods (p.41-43): the requests (form field ``xml``, the login block its
secret), the answers read into replies and blacklist entries, the content keys, and the fake
end to end over loopback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from core.models import Channel, Kind, Provider, RawRequest, State
from parsers.pull import dmc, ecall, ecampaign
from parsers.pull.base import Outcome, Page
from parsers.xml import parse_xml
from tests.fakes.ecampaign import PASSWORD, USER, Entry, Fail, FakeEcampaign
from tests.pull_http import page_of, send

RECEIVED = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("method", ecampaign.METHODS)
@pytest.mark.parametrize("channel", ecampaign.CHANNELS)
def test_requests_post_the_login_block_in_the_xml_field(channel: Channel, method: str) -> None:
    build = (
        ecampaign.get_responses_call if method == "getResponses" else ecampaign.get_blacklist_call
    )
    call = build(channel, "UTILISATEUR", "MOT<DE>PASSE")
    assert (call.method, call.path) == ("POST", f"/manageFeedback/{channel.value}/{method}")
    [(name, document)] = call.form
    assert name == "xml" and call.secrets == {"xml"} and not call.query
    root = parse_xml(document)
    assert root.findtext("login/user") == "UTILISATEUR"
    assert root.findtext("login/password") == "MOT<DE>PASSE"
    assert root.find("login/md5") is None
    assert root.find(f"manageFeedback/{method}") is not None
    assert parse_xml(build(channel, "u", "p", md5=True).form[0][1]).findtext("login/md5") == "true"


def test_only_the_documented_channels() -> None:
    with pytest.raises(ValueError, match="voice"):
        ecampaign.get_responses_call(Channel.VOICE, "u", "p")


def _response(body: bytes, callback: str, at: datetime = RECEIVED) -> RawRequest:
    return RawRequest(
        provider=Provider.ECAMPAIGN, callback=callback, method="POST", body=body, received_at=at
    )


LIST = (
    b'<?xml version="1.0"?><ecampaign><code>0</code><getResponses><response>'
    b"<date>2026-01-05 10:15:00</date><code>33</code><number>612345678</number>"
    b"<message>STOP</message></response></getResponses></ecampaign>"
)


def test_content_keys_are_stable_and_tell_entries_apart() -> None:
    first = ecampaign.read_get_responses(_response(LIST, "sms/getResponses")).items[0]
    later = ecampaign.read_get_responses(
        _response(LIST, "sms/getResponses", datetime(2026, 3, 1, tzinfo=UTC))
    ).items[0]
    assert (first.key, first.events[0].id) == (later.key, later.events[0].id)
    other = ecampaign.read_get_responses(
        _response(LIST.replace(b"STOP", b"Stop"), "sms/getResponses")
    ).items[0]
    assert other.key != first.key and other.events[0].id != first.events[0].id
    fax = ecampaign.read_get_responses(_response(LIST, "fax/getResponses")).items[0]
    assert fax.key != first.key
    assert first.key == ecampaign.content_key(Channel.SMS, "getResponses", first.events[0].data.raw)
    assert "STOP" not in first.key and "612345678" not in first.key


def test_an_entry_right_under_the_root_is_read_too() -> None:
    body = b"<ecampaign><code>0</code><response><date>2026-01-05 10:15:00</date><number>0612345678</number><message>Non</message></response></ecampaign>"
    [item] = ecampaign.read_get_responses(_response(body, "sms/getResponses")).items
    assert item.events[0].data.sender == "+33612345678" and item.events[0].data.text == "Non"


def test_an_unknown_channel_in_the_callback_is_refused() -> None:
    with pytest.raises(Exception, match="channel") as refused:
        ecampaign.read_get_responses(_response(LIST, "voice/getResponses"))
    assert getattr(refused.value, "reason", "") == "unknown_callback"


# -- the fake, end to end --------------------------------------------------------------------


async def _ask(
    session: aiohttp.ClientSession,
    fake: FakeEcampaign,
    channel: Channel,
    method: str,
    password: str = PASSWORD,
) -> Page:
    build = (
        ecampaign.get_responses_call if method == "getResponses" else ecampaign.get_blacklist_call
    )
    call = build(channel, USER, password)
    name = ecampaign.callback(channel, method)
    status, response = await send(session, fake.url, call, Provider.ECAMPAIGN, name)
    assert response.query == b""  # nothing of the form, the secret field, is kept
    return page_of(status, response, ecampaign.read_status, ecampaign.READERS[name])


async def test_replies_and_blacklist_entries_of_each_channel() -> None:
    async with FakeEcampaign() as fake, aiohttp.ClientSession() as session:
        fake.reply(
            "sms", Entry("2026-01-05 10:15:00", code="33", number="612345678", message="STOP")
        )
        fake.reply("mail", Entry("2026-01-05 11:00:00", email="a@example.fr", message="Merci"))
        fake.blacklist(
            "sms", Entry("2026-01-05 10:15:02", code="33", number="612345678", reason="STOP SMS")
        )
        sms = await _ask(session, fake, Channel.SMS, "getResponses")
        [reply] = [e for i in sms.items for e in i.events]
        assert (reply.data.kind, reply.data.state, reply.data.channel) == (
            Kind.INBOUND,
            State.RECEIVED,
            Channel.SMS,
        )
        assert (reply.data.sender, reply.data.text) == ("+33612345678", "STOP")
        assert sms.items[0].time == datetime(2026, 1, 5, 9, 15, tzinfo=UTC)
        mail = await _ask(session, fake, Channel.MAIL, "getResponses")
        assert mail.items[0].events[0].data.sender == "a@example.fr"
        blacklist = await _ask(session, fake, Channel.SMS, "getBlacklist")
        [entry] = blacklist.items[0].events
        assert (entry.data.kind, entry.data.state) == (Kind.INTERACTION, State.UNSUBSCRIBED)
        assert (entry.data.recipient, entry.data.details["reason"]) == ("+33612345678", "STOP SMS")
        assert (
            await _ask(session, fake, Channel.FAX, "getResponses")
        ).outcome is Outcome.NOTHING_NEW
        again = await _ask(
            session, fake, Channel.SMS, "getResponses"
        )  # listed again: the same keys
        assert [i.key for i in again.items] == [i.key for i in sms.items]
        assert [c.code for c in fake.calls] == ["0"] * 5
        assert [c.path for c in fake.calls][:1] == ["/manageFeedback/sms/getResponses"]


@pytest.mark.parametrize(
    ("fail", "password", "outcome", "reason"),
    [
        (None, "wrong", Outcome.CREDENTIALS_REFUSED, "code_3"),
        (Fail.NOT_ENABLED, PASSWORD, Outcome.CREDENTIALS_REFUSED, "code_4"),
        (Fail.SERVER_ERROR, PASSWORD, Outcome.RETRY_LATER, "http_500"),
    ],
)
async def test_a_refusing_ecampaign(
    fail: Fail | None, password: str, outcome: Outcome, reason: str
) -> None:
    async with FakeEcampaign() as fake, aiohttp.ClientSession() as session:
        fake.reply(
            "sms", Entry("2026-01-05 10:15:00", code="33", number="612345678", message="STOP")
        )
        fake.fail = fail
        page = await _ask(session, fake, Channel.SMS, "getResponses", password=password)
        assert (page.outcome, page.reason, page.items) == (outcome, reason, ())
        fake.fail = None
        assert (await _ask(session, fake, Channel.SMS, "getResponses")).items  # nothing lost


async def test_a_request_without_the_xml_field_is_malformed() -> None:
    async with FakeEcampaign() as fake, aiohttp.ClientSession() as session:
        async with session.post(
            f"{fake.url}/manageFeedback/sms/getResponses", data={"other": "x"}
        ) as r:
            body = await r.read()
        page = ecampaign.read_get_responses(_response(body, "sms/getResponses"))
        assert (page.outcome, page.reason) == (Outcome.REQUEST_REFUSED, "code_2")


async def test_an_ecampaign_that_does_not_answer_times_the_client_out() -> None:
    async with FakeEcampaign() as fake, aiohttp.ClientSession() as session:
        fake.fail = Fail.HANG
        call = ecampaign.get_responses_call(Channel.SMS, USER, PASSWORD)
        with pytest.raises(TimeoutError):
            await send(session, fake.url, call, Provider.ECAMPAIGN, "sms/getResponses", timeout=0.2)
        assert len(fake.calls) == 1


def test_the_password_is_only_in_fields_named_secret() -> None:
    """What a source may log of a call is its fields but ``Call.secrets`` (and never a body):
    for every builder of the three providers, that leaves nothing of the password."""
    at = datetime(2026, 1, 1, tzinfo=UTC)
    calls = [
        ecampaign.get_responses_call(Channel.SMS, USER, PASSWORD),
        ecampaign.get_blacklist_call(Channel.MAIL, USER, PASSWORD, md5=True),
        ecall.get_next_message_call(USER, PASSWORD, "0763332020"),
        ecall.delete_message_call(USER, PASSWORD, "123abc"),
        dmc.get_responses_sms_call(USER, PASSWORD, "69", at, at + timedelta(hours=1)),
    ]
    for call in calls:
        public = [(k, v) for k, v in (*call.query, *call.form) if k not in call.secrets]
        assert all(PASSWORD not in v for _, v in public)
        assert (
            any(PASSWORD in v for _, v in (*call.query, *call.form))
            or PASSWORD.encode() in call.body
        )


async def test_a_channel_without_feedback_is_an_invalid_request() -> None:
    async with FakeEcampaign() as fake, aiohttp.ClientSession() as session:
        call = ecampaign.get_responses_call(Channel.SMS, USER, PASSWORD)
        async with session.post(
            f"{fake.url}/manageFeedback/voice/getResponses", data=dict(call.form)
        ) as r:
            body = await r.read()
        page = ecampaign.read_get_responses(_response(body, "sms/getResponses"))
        assert (page.outcome, page.reason) == (Outcome.REQUEST_REFUSED, "code_1")
