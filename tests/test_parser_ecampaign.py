"""eCampaign parser: what the golden cases do not show well.

The state table is checked against the annex "États de remise" of PROSOLUCE's document, as
transcribed in ``tests/docfacts/ecampaign.json``, and the tracking case against the sample of the
published PDF (lost in the document's text extraction; see ``docs/providers.md``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from urllib.parse import urlencode
from xml.sax.saxutils import escape

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import PayloadError
from core.models import Channel, Kind, Provider, RawRequest, State
from parsers import ecampaign
from parsers.base import OK_REPLY
from parsers.tables import load_tables
from parsers.text import decode_query
from tests.golden import PAYLOADS as GOLDEN
from tests.provider_docs import facts

FACTS = facts(Provider.ECAMPAIGN)
PAYLOADS = GOLDEN / "ecampaign"
RECEIVED = datetime(2026, 1, 1, tzinfo=UTC)

# the annex's "Canal" column → the channel the table must give (None: no override)
ANNEX_CHANNELS = {"Tous": None, "Appels": Channel.VOICE, "Mail": Channel.MAIL, "FAX": Channel.FAX}
# The tracking sample of the published PDF (v3.39, "Réponse asynchrone (suivi des envois)", p.18),
# which the text extraction of the document lost:
PDF_TRACKING_SAMPLE = (
    '<?xml version="1.0"?><ecampaign><msgid>ID_MESSAGE</msgid><state>CODE_ETAT</state>'
    "<timestamp>DATE_HEURE</timestamp></ecampaign>"
)


def request(
    xml: str | None, *, callback: str = "tracking", body: bytes | None = None
) -> RawRequest:
    if body is None:
        body = urlencode({"xml": xml}).encode() if xml is not None else b""
    return RawRequest(
        provider=Provider.ECAMPAIGN,
        callback=callback,
        method="POST",
        body=body,
        content_type="application/x-www-form-urlencoded",
        received_at=RECEIVED,
    )


def tracking(state: str = "4", timestamp: str | None = "2017-01-16 14:05:09") -> str:
    stamp = "" if timestamp is None else f"<timestamp>{timestamp}</timestamp>"
    return f"<ecampaign><msgid>M1</msgid><state>{state}</state>{stamp}</ecampaign>"


def reason(xml: str | None, *, body: bytes | None = None) -> str:
    with pytest.raises(PayloadError) as info:
        ecampaign.parse(request(xml, body=body))
    return info.value.reason


# -- the state table against the annex ---------------------------------------------------------


def annex() -> list[tuple[list[str], str, str]]:
    """(codes, channel column, French description) of each line of the annex."""
    return [(row["codes"], row["channel"], row["fr"]) for row in FACTS["state_annex"]]


def test_the_annex_lists_47_codes() -> None:
    codes = [code for row in annex() for code in row[0]]
    assert len(codes) == 47  # 1-4, 7-17, 20-29, 40-46, 50-64
    expected = [*range(1, 5), *range(7, 18), *range(20, 30), *range(40, 47), *range(50, 65)]
    assert sorted(codes, key=int) == [str(n) for n in expected]


def test_every_annex_state_code_is_mapped() -> None:
    table = load_tables(Provider.ECAMPAIGN)["state"]
    missing = [code for codes, _, _ in annex() for code in codes if code not in table]
    assert missing == []


def test_table_channels_and_words_are_the_annexs() -> None:
    table = load_tables(Provider.ECAMPAIGN)["state"]
    for codes, channel, description in annex():
        for code in codes:
            assert table[code].channel is ANNEX_CHANNELS[channel], code
            if not description.startswith("Choix"):
                assert table[code].fr == description, code


def test_table_holds_only_the_annex_codes() -> None:
    annex_codes = {code for codes, _, _ in annex() for code in codes}
    assert set(load_tables(Provider.ECAMPAIGN)["state"]) == annex_codes


def test_interactions_are_the_codes_where_the_recipient_acts() -> None:
    table = load_tables(Provider.ECAMPAIGN)["state"]
    interactions = {code for code, entry in table.items() if entry.kind is Kind.INTERACTION}
    keys = {str(n) for n in range(20, 30)}
    assert interactions == {"11", "12", "13", "14", "16", "17", "52", "53", "57", "58", "59"} | keys
    assert all(table[code].final for code in interactions)


def test_failures_say_whether_trying_again_could_help() -> None:
    for code, entry in load_tables(Provider.ECAMPAIGN)["state"].items():
        assert (entry.failure is not None) == (entry.state is State.FAILED), code


# -- samples: what the document holds and what it lost ------------------------------------------


def test_the_document_holds_no_callback_sample() -> None:
    """Why there is no ``seed-*`` case: both callback samples were lost in the extraction."""
    assert FACTS["has_tracking_sample"] is False
    assert FACTS["has_import_sample"] is False


def test_pdf_tracking_case_has_the_shape_of_the_pdf_sample() -> None:
    body = (PAYLOADS / "pdf-tracking.body").read_bytes()
    xml = decode_query(body)["xml"]
    tags = re.compile(r"</?\w+>")
    assert tags.findall(xml) == tags.findall(PDF_TRACKING_SAMPLE)
    assert xml.startswith('<?xml version="1.0"?><ecampaign><msgid>')


# -- tracking ---------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [str(n) for n in range(20, 30)])
def test_key_pressed_gives_the_key(code: str) -> None:
    (event,) = ecampaign.parse(request(tracking(code)))
    assert event.data.state is State.KEY_PRESSED
    assert event.data.channel is Channel.VOICE
    assert event.data.details == {"key": code[1]}


@pytest.mark.parametrize(
    ("code", "channel", "kind"),
    [
        ("4", Channel.SMS, Kind.DELIVERY),
        ("11", Channel.VOICE, Kind.INTERACTION),
        ("42", Channel.VOICE, Kind.DELIVERY),
        ("53", Channel.MAIL, Kind.INTERACTION),
        ("56", Channel.MAIL, Kind.DELIVERY),
        ("64", Channel.FAX, Kind.DELIVERY),
    ],
)
def test_the_code_tells_channel_and_kind(code: str, channel: Channel, kind: Kind) -> None:
    (event,) = ecampaign.parse(request(tracking(code)))
    assert (event.data.channel, event.data.kind) == (channel, kind)
    assert event.routing_key == f"ecampaign.{channel}.{kind}.{event.data.state}"


def test_both_timestamp_formats_are_french_local_time() -> None:
    (dash,) = ecampaign.parse(request(tracking(timestamp="2017-07-03 09:15:42")))
    (colon,) = ecampaign.parse(request(tracking(timestamp="2017:07:03 09:15:42")))
    assert dash.time == colon.time == datetime(2017, 7, 3, 7, 15, 42, tzinfo=UTC)
    assert colon.data.raw["timestamp"] == "2017:07:03 09:15:42"


@pytest.mark.parametrize("timestamp", [None, "", "  "])
def test_without_timestamp_the_reception_time_is_used(timestamp: str | None) -> None:
    (event,) = ecampaign.parse(request(tracking(timestamp=timestamp)))
    assert event.time == RECEIVED


@pytest.mark.parametrize("timestamp", ["16/01/2017 14:05", "DATE_HEURE", "0001-01-01 00:00:00"])
def test_an_unreadable_timestamp_is_refused(timestamp: str) -> None:
    assert reason(tracking(timestamp=timestamp)) == "bad_timestamp"


def test_repeated_groups_in_any_order() -> None:
    xml = (
        "<ecampaign><state>1</state><msgid>A</msgid><timestamp>2017-01-16 14:05:09</timestamp>"
        "<state>4</state><msgid>B</msgid><timestamp>2017-01-16 14:06:00</timestamp></ecampaign>"
    )
    events = ecampaign.parse(request(xml))
    assert [(e.data.message_id, e.data.state) for e in events] == [
        ("A", State.SENT),
        ("B", State.DELIVERED),
    ]


def test_wrapper_elements_of_any_name_with_their_attributes() -> None:
    xml = (
        '<list><ecampaign id="7"><msgid>A</msgid><state>16</state></ecampaign>'
        "<ecampaign><msgid>B</msgid><state>57</state></ecampaign></list>"
    )
    first, second = ecampaign.parse(request(xml))
    assert first.data.raw == {"id": "7", "msgid": "A", "state": "16"}
    assert (first.data.state, second.data.state) == (State.LISTENED, State.UNSUBSCRIBED)


def test_names_are_read_without_namespace_or_case_and_kept_as_received() -> None:
    xml = '<ecampaign xmlns="urn:x"><MsgId> A1 </MsgId><STATE>4</STATE></ecampaign>'
    (event,) = ecampaign.parse(request(xml))
    assert event.data.message_id == "A1"
    assert event.data.state is State.DELIVERED
    assert event.data.raw == {"{urn:x}MsgId": " A1 ", "{urn:x}STATE": "4"}


def test_unknown_code_is_kept_and_acknowledged() -> None:
    (event,) = ecampaign.parse(request(tracking("5")))
    assert (event.data.state, event.data.final, event.data.kind) == (
        State.UNKNOWN,
        False,
        Kind.DELIVERY,
    )
    assert event.data.status is not None
    assert event.data.status.code == "5"
    assert ecampaign.ack([event]).status == 200


@pytest.mark.parametrize(
    "xml",
    [
        "<ecampaign><msgid>A</msgid><timestamp>2017-01-16 14:05:09</timestamp></ecampaign>",
        "<ecampaign><msgid>A</msgid><state> </state></ecampaign>",
        "<ecampaign><msgid>A</msgid><state>4</state><state>5</state></ecampaign>",
    ],
)
def test_a_message_without_msgid_or_state_is_refused(xml: str) -> None:
    assert reason(xml) == "missing_field"


def test_the_same_callback_gives_the_same_ids() -> None:
    first = ecampaign.parse(request(tracking("16")))
    again = ecampaign.parse(request(tracking("16")))
    assert [e.id for e in first] == [e.id for e in again]


# -- import report ----------------------------------------------------------------------------


def test_import_report_without_errors() -> None:
    xml = (
        "<ecampaign><importFromXml><state>OK</state><imported>3</imported></importFromXml>"
        "</ecampaign>"
    )
    (event,) = ecampaign.parse(request(xml, callback="import"))
    assert (event.data.kind, event.data.state, event.data.final) == (
        Kind.REPORT,
        State.COMPLETED,
        True,
    )
    assert event.data.details == {"imported": 3, "errors": []}
    assert event.time == RECEIVED


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("ko", State.FAILED),
        ("Erreur", State.FAILED),
        ("done", State.COMPLETED),
        ("", State.COMPLETED),
    ],
)
def test_import_report_fails_only_when_its_state_says_so(state: str, expected: State) -> None:
    xml = f"<ecampaign><importFromXml><state>{state}</state></importFromXml></ecampaign>"
    (event,) = ecampaign.parse(request(xml, callback="import"))
    assert event.data.state is expected
    assert event.data.details == {"imported": None, "errors": []}


def test_the_xml_decides_not_the_url_segment() -> None:
    (event,) = ecampaign.parse(request(tracking(), callback="import"))
    assert event.data.kind is Kind.DELIVERY


# -- refused input ----------------------------------------------------------------------------


def test_missing_form_field() -> None:
    assert reason(None, body=b"XML=%3Cecampaign%2F%3E") == "missing_field"


@pytest.mark.parametrize("xml", ["", "<ecampaign>", "not xml", "<a></b>"])
def test_invalid_xml(xml: str) -> None:
    assert reason(xml) == "invalid_xml"


@pytest.mark.parametrize(
    "xml",
    [
        '<!DOCTYPE ecampaign SYSTEM "http://example.org/x.dtd"><ecampaign/>',
        '<!DOCTYPE e [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><e><msgid>&b;</msgid></e>',
        '<!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/passwd">]><e><msgid>&x;</msgid></e>',
    ],
)
def test_dtds_are_refused(xml: str) -> None:
    assert reason(xml) == "forbidden_xml"


def test_xml_of_another_kind() -> None:
    assert reason("<ecampaign><code>0</code></ecampaign>") == "unknown_callback"


def test_deep_nesting_is_refused() -> None:
    xml = "<ecampaign><importFromXml>" + "<a>" * 50 + "</a>" * 50 + "</importFromXml></ecampaign>"
    assert reason(xml) == "invalid_xml"


def test_replies() -> None:
    error = PayloadError("x", reason="invalid_xml")
    assert ecampaign.ack([]) == OK_REPLY
    assert ecampaign.nack(error).status == 400
    assert ecampaign.retry(error).status == 503


def test_callbacks() -> None:
    assert [(c.name, c.methods) for c in ecampaign.CALLBACKS] == [
        ("tracking", ("POST",)),
        ("import", ("POST",)),
    ]


# -- property ---------------------------------------------------------------------------------

xml_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=30)


def _outcome(raw: RawRequest) -> None:
    try:
        events = ecampaign.parse(raw)
    except PayloadError:
        return
    assert all(e.data.provider is Provider.ECAMPAIGN for e in events)


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_any_body_gives_events_or_payload_error(body: bytes) -> None:
    _outcome(request(None, body=body))


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_any_query_gives_events_or_payload_error(query: bytes) -> None:
    raw = msgspec.structs.replace(request(tracking()), query=query)
    _outcome(raw)


@settings(max_examples=300)
@given(
    st.lists(st.sampled_from(["msgid", "state", "timestamp", "importFromXml", "errors", "error"])),
    st.lists(xml_text),
)
def test_any_mix_of_known_elements_gives_events_or_payload_error(
    names: list[str], texts: list[str]
) -> None:
    inner = "".join(
        f"<{name}>{escape(texts[i % len(texts)] if texts else '')}</{name}>"
        for i, name in enumerate(names)
    )
    _outcome(request(f"<ecampaign>{inner}</ecampaign>"))
