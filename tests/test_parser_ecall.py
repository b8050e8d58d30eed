"""eCall parser: what the golden cases do not show well, the code tables against the document
(transcribed in ``tests/docfacts/ecall.json``), and arbitrary input."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import PayloadError, SinkUnavailable
from core.models import Failure, Kind, Provider, RawRequest, State
from parsers import ecall
from parsers.tables import load_tables
from parsers.text import decode_query
from tests.provider_docs import facts

FACTS = facts(Provider.ECALL)
RECEIVED = datetime(2026, 1, 1, tzinfo=UTC)
FORM = "application/x-www-form-urlencoded"
NOTIFICATION = (
    b"Function=Notification&ResultCode=0&ResultText=Message+has+been+delivered"
    b"&TimeStamp=17.07.2014+12:55:15&Number=0041787557539"
)
ANSWER = (
    b"Function=Answer&AddressTo=0041766012999&AddressFrom=0041791234567"
    b"&TimeStamp=11.12.2015+10:37:00&Message="
)


def request(
    query: bytes = b"",
    body: bytes = b"",
    content_type: str = "",
    callback: str = "notification",
) -> RawRequest:
    return RawRequest(
        provider=Provider.ECALL,
        callback=callback,
        method="POST" if body else "GET",
        query=query,
        body=body,
        content_type=content_type,
        received_at=RECEIVED,
    )


def parse_one(query: bytes = b"", body: bytes = b"", content_type: str = ""):
    events = ecall.parse(request(query, body, content_type))
    assert len(events) == 1
    return events[0]


# -- status tables against the document -------------------------------------------------------

# the tables of the document: notification (3.8.1), status codes of SMS, voice, fax and MMS
# messages (3.5.3.1 to 3.5.3.4), eCall result codes (4.2)
TABLES = ["notification", "sms", "voice", "fax", "mms", "result"]


def doc_rows(table: str) -> dict[str, tuple[str, str]]:
    """Code → (status text, description) of a table of the document."""
    return {code: (row["status"], row["fr"]) for code, row in FACTS[table].items()}


@pytest.mark.parametrize("table", TABLES)
def test_every_document_code_is_mapped(table: str) -> None:
    rows = doc_rows(table)
    assert len(rows) >= 5  # the regex did find the table
    missing = sorted(set(rows) - set(load_tables(Provider.ECALL)[table]))
    assert not missing, f"codes of table {table} with no mapping: {missing}"


@pytest.mark.parametrize("table", TABLES)
def test_no_code_is_invented_and_fr_is_the_documents_description(table: str) -> None:
    rows = doc_rows(table)
    for code, entry in load_tables(Provider.ECALL)[table].items():
        assert code in rows, f"{table}/{code} is not in the document"
        assert entry.fr == rows[code][1], f"{table}/{code}"


def test_document_table_sizes() -> None:
    sizes = {table: len(doc_rows(table)) for table in TABLES}
    assert sizes == {"notification": 5, "sms": 27, "voice": 10, "fax": 26, "mms": 25, "result": 17}
    assert set(FACTS) == set(TABLES)


def test_failures_have_a_failure_class_and_others_none() -> None:
    for table in load_tables(Provider.ECALL).values():
        for entry in table.values():
            assert (entry.failure is not None) == (entry.state in {State.FAILED, State.EXPIRED})


# -- fields ---------------------------------------------------------------------------------


def test_the_jobid_colon_quirk_keeps_the_case_of_the_id() -> None:
    event = parse_one(NOTIFICATION + b"&JobID:Ab-12")
    assert event.data.reference == "Ab-12"
    assert event.data.raw["JobID:Ab-12"] == ""


def test_a_proper_jobid_wins_over_the_quirk() -> None:
    event = parse_one(NOTIFICATION + b"&JobID:old&jobid=new")
    assert event.data.reference == "new"


def test_a_jobid_colon_field_with_a_value_is_not_the_quirk() -> None:
    assert parse_one(NOTIFICATION + b"&JobID:x=y").data.reference is None


def test_body_wins_over_query() -> None:
    event = parse_one(
        query=b"Function=Notification&ResultCode=2&JobID=from-query&Extra=1",
        body=NOTIFICATION + b"&jobid=from-body",
        content_type=f"{FORM}; charset=UTF-8",
    )
    assert event.data.state is State.DELIVERED
    assert event.data.reference == "from-body"
    assert event.data.raw["Extra"] == "1"  # fields of both are kept


def test_a_body_without_content_type_is_read_as_a_form() -> None:
    assert parse_one(body=NOTIFICATION).data.state is State.DELIVERED


def test_a_body_of_another_type_is_refused() -> None:
    with pytest.raises(PayloadError) as caught:
        ecall.parse(request(body=b'{"Function": "Notification"}', content_type="application/json"))
    assert caught.value.reason == "unsupported_content_type"


def test_names_differing_by_case_first_one_wins() -> None:
    event = parse_one(NOTIFICATION.replace(b"ResultCode=0", b"resultcode=1&RESULTCODE=0"))
    assert event.data.state is State.BUFFERED


def test_function_decides_not_the_url_segment() -> None:
    events = ecall.parse(request(ANSWER + b"Hi", callback="notification"))
    assert events[0].data.kind is Kind.INBOUND


def test_address_spelling_of_the_sample_wins_over_the_parameter_list() -> None:
    event = parse_one(ANSWER + b"Hi&AdressTo=0041760000000")
    assert event.data.recipient == "+41766012999"


@pytest.mark.parametrize(
    ("encoded", "text"),
    [
        (b"Caf%E9", "Café"),
        (b"%80", "€"),
        (b"Caf%C3%A9", "CafÃ©"),  # UTF-8 bytes are not guessed: Windows-1252 is what 3.7 says
        (b"%81%80", "\x81\x80"),  # a byte Windows-1252 leaves undefined: Latin-1, nothing lost
        (b"100%25+s%FBr", "100% sûr"),
    ],
)
def test_answer_message_is_windows_1252(encoded: bytes, text: str) -> None:
    assert parse_one(ANSWER + encoded).data.text == text


def test_other_answer_fields_are_utf8() -> None:
    event = parse_one(ANSWER + b"Hi&JobID=Z%C3%BCrich")
    assert event.data.reference == "Zürich"


def test_notification_values_are_utf8() -> None:
    event = parse_one(NOTIFICATION.replace(b"delivered", b"d%C3%A9livr%C3%A9"))
    assert event.data.details["result_text"] == "Message has been délivré"


def test_an_empty_answer_message_is_an_empty_text() -> None:
    assert parse_one(ANSWER).data.text == ""


def test_an_answer_needs_a_message() -> None:
    with pytest.raises(PayloadError) as caught:
        ecall.parse(request(ANSWER.removesuffix(b"&Message=")))
    assert caught.value.reason == "missing_field"


@pytest.mark.parametrize("name", [b"Number", b"ResultCode", b"TimeStamp"])
def test_a_notification_needs_its_mandatory_fields(name: bytes) -> None:
    query = re.sub(rb"&" + name + rb"=[^&]*", b"", NOTIFICATION)
    with pytest.raises(PayloadError) as caught:
        ecall.parse(request(query))
    assert caught.value.reason == "missing_field"


# -- times ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stamp", "utc"),
    [
        (b"17.07.2014+12:55:15", "2014-07-17T10:55:15+00:00"),  # summer: UTC+2
        (b"11%2E12%2E2015+10%3A37%3A00", "2015-12-11T09:37:00+00:00"),  # winter, over-encoded
    ],
)
def test_timestamp_is_swiss_local_time(stamp: bytes, utc: str) -> None:
    query = NOTIFICATION.replace(b"17.07.2014+12:55:15", stamp)
    assert parse_one(query).time.isoformat() == utc


@pytest.mark.parametrize("stamp", [b"1Z.07.2014+12:55:15", b"2014-07-17", b"01.01.0001+00:00:00"])
def test_an_unreadable_timestamp_keeps_the_event(stamp: bytes) -> None:
    event = parse_one(NOTIFICATION.replace(b"17.07.2014+12:55:15", stamp))
    assert event.time == RECEIVED
    assert event.data.details["timestamp_invalid"] is True


# -- codes ----------------------------------------------------------------------------------


def test_an_error_code_in_result_text_sets_the_failure_class() -> None:
    query = NOTIFICATION.replace(b"ResultCode=0", b"ResultCode=3").replace(
        b"Message+has+been+delivered", b"5155+Too+much+traffic"
    )
    event = parse_one(query)
    assert event.data.error is not None
    assert (event.data.error.code, event.data.error.meaning) == ("5155", "Too much traffic")
    assert event.data.failure is Failure.TEMPORARY


def test_an_error_code_from_the_result_codes_table() -> None:
    query = NOTIFICATION.replace(b"ResultCode=0", b"ResultCode=3").replace(
        b"Message+has+been+delivered", b"11100"
    )
    event = parse_one(query)
    assert event.data.error is not None
    assert event.data.error.meaning == "Invalid recipient"
    assert event.data.failure is Failure.PERMANENT


def test_an_unknown_error_code_keeps_the_result_codes_failure_class() -> None:
    query = NOTIFICATION.replace(b"ResultCode=0", b"ResultCode=3").replace(
        b"Message+has+been+delivered", b"4711+Whatever"
    )
    event = parse_one(query)
    assert event.data.error is not None
    assert (event.data.error.code, event.data.error.meaning) == ("4711", None)
    assert event.data.failure is Failure.TEMPORARY


def test_no_error_code_is_read_from_a_success() -> None:
    query = NOTIFICATION.replace(b"Message+has+been+delivered", b"5509")
    assert parse_one(query).data.error is None


# -- replies --------------------------------------------------------------------------------


def test_replies() -> None:
    ok = ecall.ack([])
    assert (ok.status, bool(ok.body)) == (200, True)
    refused = ecall.nack(PayloadError("x", reason="missing_field"))
    assert (refused.status, refused.body) == (200, b"rejected: missing_field")
    assert ecall.retry(SinkUnavailable("down")).status == 503


def test_callbacks() -> None:
    assert [c.name for c in ecall.CALLBACKS] == ["notification", "answer"]
    assert all(c.methods == ("GET", "POST") for c in ecall.CALLBACKS)


# -- arbitrary input --------------------------------------------------------------------------

PREFIXES = st.sampled_from(
    [b"", b"Function=Notification&", b"Function=Answer&", b"function=answer&message="]
)
CONTENT_TYPES = st.sampled_from(["", FORM, "text/plain"])


@settings(max_examples=300)
@given(PREFIXES, st.binary(), st.binary(max_size=64), CONTENT_TYPES)
def test_arbitrary_input_gives_events_or_payload_error(
    prefix: bytes, query: bytes, body: bytes, content_type: str
) -> None:
    try:
        events = ecall.parse(request(prefix + query, body, content_type))
    except PayloadError:
        return
    assert isinstance(events, list)


FIELD = st.sampled_from(
    ["ResultCode", "ResultText", "Number", "TimeStamp", "JobID", "AddressTo", "AdressFrom"]
)


@settings(max_examples=300)
@given(
    st.sampled_from([b"Function=Notification", b"Function=Answer"]),
    st.lists(st.tuples(FIELD, st.text()), max_size=8),
)
def test_arbitrary_values_give_events_or_payload_error(
    function: bytes, pairs: list[tuple[str, str]]
) -> None:
    query = function + b"".join(b"&%s=%s" % (n.encode(), v.encode()) for n, v in pairs)
    try:
        ecall.parse(request(query + b"&Message=x"))
    except PayloadError:
        return


_QUERY_PIECES = (
    st.sampled_from([b"&", b"=", b"Message", b"message", b"MESSAGE", b"%4D", b"%6d", b"essage"])
    | st.sampled_from([b" ", b"+", b"x", b"%E9", b"%", b"%C3%A9", b"\xe9", b"\t", b"%20", b"%26"])
    | st.sampled_from([b"%3D", b"Me%73sage", b"\x1c"])
    | st.binary(max_size=3)
)


@settings(max_examples=1000)
@given(st.lists(_QUERY_PIECES, max_size=30).map(b"".join))
def test_the_message_is_read_again_from_its_own_parts(source: bytes) -> None:
    """Reading again only the parts ``message_parts`` keeps gives the Message fields that
    reading the whole query again gives."""

    def messages(query: bytes) -> dict[str, str]:
        fields = decode_query(query, ("cp1252", "iso-8859-1"))
        return {k: v for k, v in fields.items() if k.lower() == "message"}

    assert messages(ecall.message_parts(source)) == messages(source)
