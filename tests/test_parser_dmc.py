"""DMC parser: what the golden cases do not show well (tables against the document's annex 5.4
and section 2.9, transcribed in ``tests/docfacts/dmc.json``; dates, limits)."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import PayloadError, SinkUnavailable
from core.models import Channel, Kind, Provider, RawRequest, State
from parsers import dmc
from parsers.tables import load_tables
from tests.golden import PAYLOADS
from tests.provider_docs import facts

FACTS = facts(Provider.DMC)
RECEIVED_AT = datetime(2026, 1, 1, tzinfo=UTC)
TABLES = load_tables(Provider.DMC)


def _request(body: bytes | str) -> RawRequest:
    return RawRequest(
        provider=Provider.DMC,
        callback="cra",
        method="POST",
        body=body.encode() if isinstance(body, str) else body,
        received_at=RECEIVED_AT,
    )


def _sms(status: str = "SENT", date: str = "2014-07-11 09:52:12", inner: str = "") -> str:
    history = inner or f'<status date="{date}" type="{status}"/>'
    return (
        '<status_report username="1234"><sms to="0601020304" status="'
        f'{status}" call_id="1" ref_externe="" date="{date}">{history}</sms></status_report>'
    )


# -- the code tables against the document ------------------------------------------------------


def _annex_codes() -> dict[str, set[str]]:
    """The codes of each table of annex 5.4 (5.4.1 SMS to 5.4.7 all media)."""
    return {table: set(codes) for table, codes in FACTS["annex_5_4"].items()}


def test_every_annex_5_4_code_is_mapped() -> None:
    codes = _annex_codes()
    media = ["sms", "mms", "vocal", "fax", "email", "notif", "all"]
    assert set(codes) == {f"cra_{medium}" for medium in media}
    for table, names in codes.items():
        assert len(names) >= 10, f"{table}: the annex regex found too few codes"
        missing = names - set(TABLES[table])
        assert not missing, f"{table}: codes of the annex without mapping: {sorted(missing)}"


def test_annex_code_count_matches_the_document() -> None:
    codes = _annex_codes()
    extra = {t: set(TABLES[t]) - codes[t] for t in codes}
    # the one alias: the document spells the MMS code TEMPOPERORROR; the regular spelling is too
    assert extra == {t: set() for t in codes} | {"cra_mms": {"CRA_MMS_TEMPOPERERROR"}}


def test_every_status_of_section_2_9_is_mapped() -> None:
    listed = set(FACTS["statuses_listed_2_9"])
    in_samples = set(FACTS["statuses_in_samples_2_9"])
    assert len(listed) >= 9
    assert "CLICK" in in_samples
    missing = (listed | in_samples) - set(TABLES["status"])
    assert not missing


def test_failures_and_only_failures_carry_a_failure_class() -> None:
    failures = {State.FAILED, State.EXPIRED, State.CANCELLED}
    for name, table in TABLES.items():
        if not name.startswith("cra_"):
            continue
        for code, entry in table.items():
            assert (entry.failure is not None) == (entry.state in failures), code


# -- media, states and codes --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "channel", "to", "recipient"),
    [
        ("sms", Channel.SMS, "0601020304", "+33601020304"),
        ("mms", Channel.MMS, "+33601020304", "+33601020304"),
        ("mail", Channel.MAIL, " test@sfr.com ", "test@sfr.com"),
        ("fax", Channel.FAX, "01.40.20.30.40", "+33140203040"),
        ("call", Channel.VOICE, "0033401020304", "+33401020304"),
        ("notif", Channel.PUSH, "KUBgUt_7Gs5gaa8Dj", "KUBgUt_7Gs5gaa8Dj"),
    ],
)
def test_each_medium_has_its_channel_and_address(
    tag: str, channel: Channel, to: str, recipient: str
) -> None:
    body = f'<status_report><{tag} to="{to}" status="ERROR" call_id="9"/></status_report>'
    (event,) = dmc.parse(_request(body))
    assert event.data.channel is channel
    assert event.data.recipient == recipient
    assert event.data.state is State.FAILED


def test_status_falls_back_to_the_last_history_type() -> None:
    body = _sms(inner='<status type="SENT"/><status type="RECEIVED"/>').replace(
        'status="SENT" ', ""
    )
    (event,) = dmc.parse(_request(body))
    assert event.data.status is not None and event.data.status.code == "RECEIVED"
    assert event.data.state is State.DELIVERED


def test_no_status_at_all_is_refused() -> None:
    with pytest.raises(PayloadError) as caught:
        dmc.parse(_request('<status_report><sms to="0601020304"/></status_report>'))
    assert caught.value.reason == "missing_field"


def test_code_with_a_parameter_is_read_in_its_detail_entry() -> None:
    inner = '<status type="ERROR" code="CRA_MISSINGPARAM{info1,info2}"/>'
    (event,) = dmc.parse(_request(_sms("ERROR", inner=inner)))
    assert event.data.error is not None
    assert event.data.error.meaning == TABLES["cra_all"]["CRA_MISSINGPARAM{DETAIL}"].meaning
    assert event.data.details["code_detail"] == "info1,info2"
    assert event.data.failure is not None and event.data.failure.value == "permanent"


def test_a_failure_code_makes_the_state_precise() -> None:
    inner = '<status type="ABORTED" code="CRA_BROADCASTTERMINATED"/>'
    (event,) = dmc.parse(_request(_sms("ABORTED", inner=inner)))
    assert event.data.state is State.CANCELLED
    assert event.data.status is not None and event.data.status.code == "ABORTED"


def test_the_current_status_is_the_last_of_its_type() -> None:
    inner = (
        '<status type="ERROR" code="CRA_SMS_TEMPORARY"/><status type="SENT"/>'
        '<status type="ERROR" code="CRA_SMS_WRONGNUMBER" info="inconnu"/>'
    )
    (event,) = dmc.parse(_request(_sms("ERROR", inner=inner)))
    assert event.data.error is not None and event.data.error.code == "CRA_SMS_WRONGNUMBER"
    assert event.data.details["info"] == "inconnu"
    assert [s["type"] for s in event.data.details["history"]] == ["ERROR", "SENT", "ERROR"]


def test_vxml_info_and_transfer_are_found_inside_a_status_too() -> None:
    body = (
        '<status_report><call to="0401020304" status="TRANSFERED" call_id="7">'
        '<status type="TRANSFERED"><vxml_info voicemail="TRUE" start="0"/>'
        '<transfer to="0102030405"/></status></call></status_report>'
    )
    (event,) = dmc.parse(_request(body))
    assert event.data.kind is Kind.INTERACTION
    assert event.data.details["vxml"] == {"voicemail": True, "start": "1970-01-01T00:00:00Z"}
    assert event.data.details["transfer_to"] == "+33102030405"


def test_answered_without_info_is_an_empty_reply() -> None:
    (event,) = dmc.parse(_request(_sms("ANSWERED")))
    assert event.data.kind is Kind.INBOUND
    assert event.data.text == ""
    assert event.data.sender == "+33601020304"
    assert event.data.recipient is None


def test_the_same_report_gives_the_same_ids_and_each_element_its_own() -> None:
    body = (PAYLOADS / "dmc" / "seed-notif-sent-errors.body").read_bytes()
    first, second = dmc.parse(_request(body)), dmc.parse(_request(body))
    assert [e.id for e in first] == [e.id for e in second]
    assert len({e.id for e in first}) == 3


# -- dates ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "utc"),
    [
        ("2014-07-11 09:52:12", "2014-07-11T07:52:12+00:00"),  # Paris, summer
        ("2015-01-15 10:00:00", "2015-01-15T09:00:00+00:00"),  # Paris, winter
        ("2016-11-08 13:16:56 CET", "2016-11-08T12:16:56+00:00"),
        ("2016-07-08 13:16:56 CEST", "2016-07-08T11:16:56+00:00"),
        ("2016-11-08 13:16:56 cet", "2016-11-08T12:16:56+00:00"),
        ("2016-11-08 13:16:56 UTC", "2016-11-08T13:16:56+00:00"),
        ("2016-11-08 13:16:56 GMT", "2016-11-08T13:16:56+00:00"),
        ("2019-03-28T09:42:47Z", "2019-03-28T09:42:47+00:00"),
        ("2019-03-28T09:42:47.250+01:00", "2019-03-28T08:42:47.250000+00:00"),
        ("2019-03-28T09:42:47", "2019-03-28T08:42:47+00:00"),  # ISO without zone: Paris
        ("1405067712822", "2014-07-11T08:35:12.822000+00:00"),  # epoch milliseconds
    ],
)
def test_dates(value: str, utc: str) -> None:
    (event,) = dmc.parse(_request(_sms(date=value)))
    assert event.time.isoformat() == utc


@pytest.mark.parametrize(
    "value", ["2016-11-08 13:16:56 PST", "11/08/2016 13:16", "2019-13-28T09:42:47Z", "9" * 15]
)
def test_unreadable_dates_are_refused(value: str) -> None:
    with pytest.raises(PayloadError) as caught:
        dmc.parse(_request(_sms(date=value)))
    assert caught.value.reason == "bad_timestamp"


def test_json_dates_may_be_epoch_milliseconds_and_values_not_strings() -> None:
    doc = {
        "status_report": {
            "username": 1234,
            "call": {
                "to": "0401020304",
                "date": 1405067721013,
                "call_id": 30020008248120,
                "status": "ENDED",
                "status_list": [{"date": 1405067721013, "type": "ENDED", "time": 9}],
                "vxml_info": {"voicemail": True, "start": 1405067712822, "end": 1405067721013},
            },
        }
    }
    (event,) = dmc.parse(_request(orjson.dumps(doc)))
    assert event.time.isoformat() == "2014-07-11T08:35:21.013000+00:00"
    assert event.data.message_id == "30020008248120"
    assert event.data.details["username"] == "1234"
    assert event.data.details["duration"] == 9
    assert event.data.details["vxml"] == {
        "voicemail": True,
        "start": "2014-07-11T08:35:12.822000Z",
        "end": "2014-07-11T08:35:21.013000Z",
        "duration_ms": 8191,
    }
    assert event.data.raw["call"] == doc["status_report"]["call"]


# -- refused documents ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (
            '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>'
            '<status_report username="&b;"/>',
            "forbidden_xml",
        ),
        (
            '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            "<status_report>&x;</status_report>",
            "forbidden_xml",
        ),
        ("", "invalid_xml"),
        ("status=SENT&call_id=1", "invalid_xml"),
        ("<status_report><sms status='SENT'></status_report>", "invalid_xml"),
        ("<report/>", "unknown_document"),
        ("[1, 2]", "invalid_xml"),
        ('{"status_report": []}', "unknown_document"),
        ('{"status_report": {"sms": ["SENT"]}}', "bad_element"),
        ('{"status_report": {"sms": {"status_list": "SENT"}}}', "bad_element"),
        ('{"status_report": {"sms": {"status": "SENT", "vxml_info": 3}}}', "bad_element"),
        ('{"status_report": {"whatsapp": [{"status": "SENT"}]}}', "unknown_medium"),
        ('{"status_report": {"sms": [{"status": "SENT",}]}}', "bad_json"),
    ],
)
def test_refused(body: str, reason: str) -> None:
    with pytest.raises(PayloadError) as caught:
        dmc.parse(_request(body))
    assert caught.value.reason == reason


def test_nesting_deeper_than_any_report_is_refused() -> None:
    deep_json = '{"status_report": {"sms": {"status": "SENT", "x": ' + "[" * 200 + "]" * 200 + "}}}"
    with pytest.raises(PayloadError) as caught:
        dmc.parse(_request(deep_json))
    assert caught.value.reason == "bad_element"
    deep_xml = (
        "<status_report><sms status='SENT'>" + "<a>" * 50 + "</a>" * 50 + "</sms></status_report>"
    )
    with pytest.raises(PayloadError) as caught:
        dmc.parse(_request(deep_xml))
    assert caught.value.reason == "invalid_xml"


def test_json_is_recognized_after_a_byte_order_mark_and_blanks() -> None:
    body = b'\xef\xbb\xbf \r\n{"status_report": {"username": "1234", "sms": []}}'
    assert dmc.parse(_request(body)) == []


# -- replies --------------------------------------------------------------------------------------


def test_replies() -> None:
    assert dmc.ack([]).status == 200
    assert dmc.nack(PayloadError("x", reason="invalid_xml")).status == 400
    assert dmc.retry(SinkUnavailable("down")).status == 503
    assert [c.name for c in dmc.CALLBACKS] == ["cra"]


# -- property: anything in, events or PayloadError out ---------------------------------------------

_xml_values = st.text(
    alphabet="0123456789 +-:.T|()ZCESTUGMabcdefxyzéàçÿ€\u00a0\u2028_{}@'/", max_size=30
)


_statuses = st.sampled_from(["SENT", "ERROR", "ANSWERED", "ENDED", "CLICK", "NEW"])
_dates = st.sampled_from(["2014-07-11 09:52:12", "2016-11-08 13:16:56 CET", "2019-03-28T09:42:47Z"])


@st.composite
def _xml_reports(draw: st.DrawFn) -> bytes:
    tag = draw(st.sampled_from(["sms", "mms", "mail", "fax", "call", "notif"]))
    names = ["to", "call_id", "ref_externe", "code", "info", "time", "size", "page"]
    attrs = draw(st.dictionaries(st.sampled_from(names), _xml_values, max_size=5))
    attrs["status"] = attrs["type"] = draw(_statuses | _xml_values)
    attrs["date"] = draw(_dates | _xml_values)
    extra = draw(
        st.dictionaries(st.sampled_from(["start", "end", "voicemail", "route"]), _xml_values)
    )
    text = " ".join(f'{k}="{v}"' for k, v in attrs.items())
    vxml = " ".join(f'{k}="{v}"' for k, v in extra.items())
    return (
        f"<status_report><{tag} {text}><status {text}/><vxml_info {vxml}/>"
        f'<transfer to="{attrs.get("to", "")}"/></{tag}></status_report>'
    ).encode()


_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
_json_values = st.recursive(
    _json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
_json_statuses = st.lists(
    st.dictionaries(st.sampled_from(["type", "date", "code", "info", "time"]), _json_scalars),
    max_size=3,
)


@st.composite
def _json_reports(draw: st.DrawFn) -> bytes:
    keys = st.sampled_from(["to", "date", "call_id", "vxml_info", "transfer", "x"])
    medium = draw(st.dictionaries(keys, _json_values, max_size=5))
    medium["status"] = draw(_statuses | _json_scalars)
    medium["status_list"] = draw(_json_statuses | _json_values)
    tag = draw(st.sampled_from(["sms", "call", "notif", "mail", "username"]))
    return orjson.dumps({"status_report": {tag: draw(st.sampled_from([medium, [medium]]))}})


@settings(max_examples=300)
@given(st.binary(max_size=400) | _xml_reports() | _json_reports())
def test_any_body_gives_events_or_a_payload_error(body: bytes) -> None:
    """300 examples: raw bytes, XML reports with arbitrary values, arbitrary JSON reports."""
    try:
        events = dmc.parse(_request(body))
    except PayloadError:
        return
    assert isinstance(events, list)
