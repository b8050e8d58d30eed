"""sMsmode parser: code tables against the document (transcribed in
``tests/docfacts/smsmode.json``), time formats, v2 webhook edges, robustness."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlencode

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import PayloadError, SinkUnavailable
from core.models import Event, Failure, Provider, RawRequest, State
from parsers import smsmode
from parsers.tables import load_tables
from tests.provider_docs import facts

FACTS = facts(Provider.SMSMODE)
RECEIVED = datetime(2026, 1, 1, tzinfo=UTC)

# Codes of item 11's table that answer the smsStatus.do request itself and are never the status
# of a message: each with a word of its description, to prove which row is meant.
REQUEST_ERRORS = {"32": "authentification", "61": "smsID invalide"}


def _request(callback: str, *, query: bytes = b"", body: bytes = b"") -> RawRequest:
    return RawRequest(
        provider=Provider.SMSMODE,
        callback=callback,
        method="POST" if callback == "webhook" else "GET",
        query=query,
        body=body,
        content_type="application/json" if callback == "webhook" else "",
        received_at=RECEIVED,
    )


def _one(request: RawRequest) -> Event:
    events = smsmode.parse(request)
    assert len(events) == 1
    return events[0]


# -- the status tables of the document ---------------------------------------------------------


def _pairs(rows: list[list[str]]) -> list[tuple[str, str]]:
    return [(code, description) for code, description in rows]


def test_every_annex_code_is_mapped_with_the_documents_words() -> None:
    """The annex "Liste récapitulative des statuts des SMS retournés": the document's last table."""
    annex = _pairs(FACTS["annex"])
    assert FACTS["status_tables"] == 2
    assert len(annex) == 38
    table = load_tables(Provider.SMSMODE)["statut"]
    missing = [code for code, _ in annex if code not in table]
    assert missing == []
    assert {code: table[code].fr for code, _ in annex} == dict(annex)


def test_every_code_of_the_delivery_report_table_is_mapped() -> None:
    """Item 4 (compteRendu.do): the statuses of a delivery report."""
    rows = _pairs(FACTS["delivery_report_statuses"])
    assert [code for code, _ in rows] == ["0", "2", "11", "13", "34", "35"]
    table = load_tables(Provider.SMSMODE)["statut"]
    assert [code for code, _ in rows if code not in table] == []


def test_every_status_of_the_sms_status_tables_is_mapped() -> None:
    """Item 11 (smsStatus.do): every code is mapped, but the request's own errors 32 and 61."""
    rows = _pairs(FACTS["sms_status_rows"])
    assert len(rows) >= 20
    table = load_tables(Provider.SMSMODE)["statut"]
    unmapped = {code: text for code, text in rows if code not in table}
    assert set(unmapped) == set(REQUEST_ERRORS)
    for code, word in REQUEST_ERRORS.items():
        assert word in unmapped[code]


def test_table_entries_are_consistent() -> None:
    """A failure class exactly on failures; cancellations need none."""
    for name, table in load_tables(Provider.SMSMODE).items():
        for code, entry in table.items():
            where = f"{name}.{code}"
            if entry.state in (State.FAILED, State.EXPIRED):
                assert entry.failure is not None, where
                assert entry.final, where
            elif entry.state is not State.CANCELLED:
                assert entry.failure is None, where


# -- HTTP API callbacks -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("callback", "query"),
    [
        ("delivery", b"statut=11&smsID=a&date_reception=25032010-095217"),
        ("reply", b"emetteur=33601020304&message=oui&date_reception=2010-03-25+09%3A52%3A17"),
    ],
)
def test_each_callback_reads_both_time_formats(callback: str, query: bytes) -> None:
    event = _one(_request(callback, query=query))
    assert event.time == datetime(2010, 3, 25, 8, 52, 17, tzinfo=UTC)


def test_the_callback_kind_follows_the_fields_not_the_url() -> None:
    """A reply configured on the delivery URL is still a reply."""
    event = _one(_request("delivery", query=b"emetteur=33601020304&date_reception=01012013-122233"))
    assert event.data.kind.value == "inbound"


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        (b"statut=11", "missing_field"),
        (b"statut=11&date_reception=hier", "bad_timestamp"),
        (b"statut=11&date_reception=01010001-000000", "bad_timestamp"),  # before UTC's year 1
        (b"message=oui&date_reception=01012013-122233&responseID=r1", "missing_field"),
        (b"numero=33601020304", "unknown_callback"),
    ],
)
def test_bad_http_api_callbacks_are_refused(query: bytes, reason: str) -> None:
    with pytest.raises(PayloadError) as caught:
        smsmode.parse(_request("delivery", query=query))
    assert caught.value.reason == reason


def test_an_unlisted_code_of_the_35xx_range_is_unknown() -> None:
    """The document lists codes, not ranges: an unlisted 3550 is not guessed."""
    event = _one(_request("delivery", query=b"statut=3550&date_reception=2024-01-02+03%3A04%3A05"))
    assert event.data.state is State.UNKNOWN
    assert event.data.status is not None
    assert event.data.status.code == "3550"


def test_a_listened_voice_sms_is_a_voice_interaction() -> None:
    event = _one(_request("delivery", query=b"statut=16&date_reception=2024-01-02+03%3A04%3A05"))
    assert (event.data.channel.value, event.data.kind.value) == ("voice", "interaction")


# -- REST API v2 webhooks ------------------------------------------------------------------------

MT = {
    "messageId": "m-1",
    "direction": "MT",
    "recipient": {"to": "33612345678"},
    "status": {"value": "DELIVERED", "deliveryDate": "2024-07-14T20:15:03Z"},
}


def _webhook(doc: object) -> Event:
    return _one(_request("webhook", body=orjson.dumps(doc)))


def test_a_retried_webhook_keeps_its_event_id() -> None:
    """Key order and layout of the body do not change the id: a retry is recognized."""
    first = _webhook(MT)
    again = _one(_request("webhook", body=orjson.dumps(dict(reversed(MT.items())))))
    indented = _one(_request("webhook", body=orjson.dumps(MT, option=orjson.OPT_INDENT_2)))
    assert first.id == again.id == indented.id


def test_a_new_status_of_the_same_message_is_a_new_event() -> None:
    enroute = _webhook({**MT, "status": {"value": "ENROUTE"}})
    delivered = _webhook(MT)
    assert enroute.data.message_id == delivered.data.message_id
    assert enroute.id != delivered.id


def test_webhook_values_are_read_case_insensitively_and_ids_as_text() -> None:
    event = _webhook(
        {**MT, "direction": "mt", "messageId": 12345, "status": {"value": "delivered"}}
    )
    assert (event.data.state, event.data.message_id) == (State.DELIVERED, "12345")
    assert event.time == RECEIVED  # no date given: the reception time stands in


def test_a_failure_detail_refines_a_failure_value_only() -> None:
    expired = _webhook({**MT, "status": {"value": "UNDELIVERED", "detail": "EXPIRED"}})
    assert (expired.data.state, expired.data.failure) == (State.EXPIRED, Failure.TEMPORARY)
    assert expired.data.error is not None
    assert expired.data.error.code == "EXPIRED"
    delivered = _webhook({**MT, "status": {"value": "DELIVERED", "detail": "INTERNAL_ERROR"}})
    assert delivered.data.state is State.DELIVERED
    assert delivered.data.error is None
    assert delivered.data.details == {"status_detail": "INTERNAL_ERROR"}


def test_a_utf8_bom_and_a_latin9_body_are_read() -> None:
    doc = {**MT, "direction": "MO", "body": {"text": "déjà 20€"}}
    latin9 = orjson.dumps(doc).decode().encode("iso-8859-15")
    assert _one(_request("webhook", body=latin9)).data.text == "déjà 20€"
    bom = b"\xef\xbb\xbf" + orjson.dumps(doc)
    assert _one(_request("webhook", body=bom)).data.text == "déjà 20€"


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        ({**MT, "direction": "XX"}, "unknown_callback"),
        ({k: v for k, v in MT.items() if k != "messageId"}, "missing_field"),
        ({**MT, "status": "DELIVERED"}, "bad_field"),
        ({**MT, "messageId": {"id": 1}}, "bad_field"),
        ({**MT, "status": {"value": "DELIVERED", "deliveryDate": "demain"}}, "bad_timestamp"),
        ({**MT, "status": {"value": "DELIVERED", "deliveryDate": 1720988103}}, "bad_timestamp"),
        (
            {**MT, "status": {"value": "READ", "deliveryDate": "0001-01-01T00:00:00"}},
            "bad_timestamp",
        ),
    ],
)
def test_bad_webhooks_are_refused(doc: object, reason: str) -> None:
    with pytest.raises(PayloadError) as caught:
        smsmode.parse(_request("webhook", body=orjson.dumps(doc)))
    assert caught.value.reason == reason


# -- acknowledgement contract ---------------------------------------------------------------------


def test_callbacks_and_replies() -> None:
    assert [c.name for c in smsmode.CALLBACKS] == ["delivery", "reply", "webhook"]
    assert (smsmode.ack([]).status, smsmode.ack([]).body) == (200, b"OK")
    assert smsmode.nack(PayloadError("x", reason="bad_json")).status == 400
    assert smsmode.retry(SinkUnavailable("down")).status == 503


# -- robustness: events or PayloadError, never another exception (max_examples=300 each) ---------

QUERY_KEYS = (
    "numero",
    "date_reception",
    "statut",
    "smsID",
    "refClient",
    "mcc_mnc",
    "message",
    "emetteur",
    "responseID",
)
JSON_KEYS = (
    "messageId",
    "direction",
    "recipient",
    "to",
    "refClient",
    "from",
    "body",
    "text",
    "channel",
    "type",
    "status",
    "value",
    "detail",
    "deliveryDate",
    "acceptedAt",
    "sentDate",
    "originMessageId",
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.sampled_from(["MT", "MO", "DELIVERED", "UNDELIVERABLE", "2024-07-14T20:15:03Z"]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(JSON_KEYS) | st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=12,
)


def _events_or_payload_error(request: RawRequest) -> None:
    try:
        events = smsmode.parse(request)
    except PayloadError:
        return
    assert all(isinstance(e, Event) for e in events)


@settings(max_examples=300)
@given(callback=st.sampled_from(["delivery", "reply", "webhook"]), data=st.binary(max_size=300))
def test_arbitrary_bytes(callback: str, data: bytes) -> None:
    _events_or_payload_error(_request(callback, query=data, body=data))


@settings(max_examples=300)
@given(fields=st.dictionaries(st.sampled_from(QUERY_KEYS), st.text(max_size=25), max_size=9))
def test_arbitrary_query_fields(fields: dict[str, str]) -> None:
    query = urlencode(fields).encode()
    _events_or_payload_error(_request("delivery", query=query))


@settings(max_examples=300)
@given(doc=st.dictionaries(st.sampled_from(JSON_KEYS), json_values, max_size=10))
def test_arbitrary_json_documents(doc: dict[str, object]) -> None:
    _events_or_payload_error(_request("webhook", body=orjson.dumps(doc)))
