"""iSendPro parser: what the golden cases do not show well, the code tables, arbitrary input."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import PayloadError
from core.models import Failure, Kind, Provider, RawRequest, State
from parsers import isendpro
from parsers.tables import load_tables
from tests.provider_docs import facts

FACTS = facts(Provider.ISENDPRO)
RECEIVED = datetime(2026, 1, 1, tzinfo=UTC)


def request(query: bytes, callback: str = "delivery") -> RawRequest:
    return RawRequest(
        provider=Provider.ISENDPRO,
        callback=callback,
        method="GET",
        query=query,
        received_at=RECEIVED,
    )


def dlr(**fields: str) -> bytes:
    base = {
        "tel": "0612345678",
        "statut": "0",
        "code_erreur": "000",
        "date": "2024-07-01",
        "heure": "12:00:00",
        "id": "1",
        "operateur": "SFR",
        "tracker": "t",
    }
    base.update(fields)
    return "&".join(f"{k}={v}" for k, v in base.items()).encode()


def one(query: bytes):
    [event] = isendpro.parse(request(query))
    return event


# -- the document's annexes (tests/docfacts/isendpro.json), every code mapped ------------------


def test_every_sfr_orange_code_of_annex_5_is_mapped() -> None:
    codes = FACTS["error_sfr_orange"]
    assert len(codes) == 46
    assert set(codes) == set(load_tables(Provider.ISENDPRO)["error_sfr_orange"])


def test_every_bouygues_code_of_annex_6_is_mapped() -> None:
    codes = FACTS["error_bouygues"]
    assert len(codes) == 16
    assert set(codes) == set(load_tables(Provider.ISENDPRO)["error_bouygues"])


def test_every_free_state_of_annex_7_is_mapped() -> None:
    codes = FACTS["error_free"]
    assert codes == [str(i) for i in range(1, 9)]
    assert set(codes) == set(load_tables(Provider.ISENDPRO)["error_free"])


def test_error_codes_of_failures_have_a_class_and_successes_none() -> None:
    """(``statut`` 2 alone says nothing of the class: its code_erreur does.)"""
    for name, table in load_tables(Provider.ISENDPRO).items():
        if name == "statut":
            continue
        for code, entry in table.items():
            failed = entry.state in {State.FAILED, State.EXPIRED, State.CANCELLED}
            assert (entry.failure is not None) == failed, (name, code)


# -- delivery reports ---------------------------------------------------------------------


def test_french_local_time_to_utc_summer_and_winter() -> None:
    assert one(dlr(date="2024-07-01", heure="12:00:00")).time == datetime(
        2024, 7, 1, 10, tzinfo=UTC
    )
    assert one(dlr(date="2024-01-15", heure="12:00:00")).time == datetime(
        2024, 1, 15, 11, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("tel", "e164"),
    [
        ("0612345678", "+33612345678"),
        ("0033612345678", "+33612345678"),
        ("0041791234567", "+41791234567"),
        ("33612345678", "+33612345678"),
        ("%2B33612345678", "+33612345678"),
        ("0596123456", "+33596123456"),
        ("not-a-number", "not-a-number"),
    ],
)
def test_numbers_to_e164(tel: str, e164: str) -> None:
    assert one(dlr(tel=tel)).data.recipient == e164


def test_error_code_read_in_the_operator_table() -> None:
    event = one(dlr(statut="2", code_erreur="107", operateur="ORAN"))
    assert (event.data.state, event.data.final, event.data.failure) == (
        State.FAILED,
        True,
        Failure.TEMPORARY,
    )
    assert event.data.error is not None
    assert (event.data.error.code, event.data.error.meaning) == ("107", "Absent subscriber")
    assert event.routing_key == "isendpro.sms.delivery.failed"


def test_bouygues_and_free_codes() -> None:
    bouy = one(dlr(statut="2", code_erreur="PT03PushSMS11030", operateur="BOUY"))
    assert bouy.data.failure is Failure.PERMANENT
    free = one(dlr(statut="2", code_erreur="003", operateur="FREE"))
    assert (free.data.state, free.data.failure) == (State.EXPIRED, Failure.TEMPORARY)
    assert free.data.error is not None and free.data.error.meaning == "Validity period expired"


def test_other_operators_use_the_sfr_orange_and_bouygues_tables() -> None:
    assert (
        one(dlr(statut="2", code_erreur="101", operateur="VIRG")).data.failure is Failure.PERMANENT
    )
    assert (
        one(dlr(statut="2", code_erreur="10008", operateur="NRJ")).data.failure is Failure.TEMPORARY
    )


def test_unknown_code_and_unknown_statut_still_give_events() -> None:
    unknown_code = one(dlr(statut="2", code_erreur="999", operateur="SFR"))
    assert (unknown_code.data.state, unknown_code.data.failure) == (State.FAILED, None)
    assert unknown_code.data.error is not None and unknown_code.data.error.meaning is None
    unknown_statut = one(dlr(statut="7"))
    assert (unknown_statut.data.state, unknown_statut.data.final) == (State.UNKNOWN, False)
    assert unknown_statut.data.status is not None and unknown_statut.data.status.code == "7"


def test_delivered_report_carries_no_error() -> None:
    event = one(dlr(statut="0", code_erreur="000"))
    assert event.data.error is None
    assert event.data.raw["code_erreur"] == "000"


def test_latin9_and_utf8_percent_encoding() -> None:
    latin9 = one(dlr(libelle="re%E7u%20%A4"))  # ç and the euro sign in ISO-8859-15
    assert latin9.data.details["label"] == "reçu €"
    utf8 = one(dlr(libelle="re%C3%A7u"))
    assert utf8.data.details["label"] == "reçu"


def test_missing_or_bad_fields_are_payload_errors() -> None:
    with pytest.raises(PayloadError) as missing:
        isendpro.parse(request(b"tel=0612345678&date=2024-01-01&heure=10:00:00"))
    assert missing.value.reason == "unknown_callback"
    with pytest.raises(PayloadError) as no_date:
        isendpro.parse(request(b"statut=0&heure=10:00:00"))
    assert no_date.value.reason == "missing_field"
    with pytest.raises(PayloadError) as bad_time:
        isendpro.parse(request(dlr(heure="25:99:00")))
    assert bad_time.value.reason == "bad_timestamp"


# -- replies ------------------------------------------------------------------------------


def test_reply_with_latin9_text() -> None:
    [event] = isendpro.parse(request(b"tel=0612345678&id_retour=5&msg_sms=Merci+%E0+vous", "reply"))
    assert (event.data.kind, event.data.state) == (Kind.INBOUND, State.RECEIVED)
    assert event.data.text == "Merci à vous"
    assert event.data.sender == "+33612345678"
    assert event.time == RECEIVED


def test_acknowledgement_words() -> None:
    assert isendpro.ack([]).body == b"validation"
    error = PayloadError("x")
    assert isendpro.nack(error).body == isendpro.retry(error).body == b"probleme"
    assert isendpro.ack([]).content_type == "text/plain"


# -- arbitrary input ----------------------------------------------------------------------

FIELD_NAMES = st.sampled_from(
    [
        "tel",
        "statut",
        "code_erreur",
        "date",
        "heure",
        "id",
        "operateur",
        "tracker",
        "libelle",
        "id_retour",
        "msg_sms",
        "x",
    ]
)


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_any_bytes_give_events_or_a_payload_error(query: bytes) -> None:
    with contextlib.suppress(PayloadError):
        isendpro.parse(request(query))


@settings(max_examples=300)
@given(st.dictionaries(FIELD_NAMES, st.text(max_size=20)))
def test_any_fields_give_events_or_a_payload_error(fields: dict[str, str]) -> None:
    from urllib.parse import urlencode

    try:
        events = isendpro.parse(
            request(urlencode(fields, encoding="latin-1", errors="replace").encode())
        )
    except PayloadError:
        return
    assert len(events) == 1


# -- the fast paths of the parsers' helpers agree with the general ones ------------------------------


@settings(max_examples=300)
@given(
    st.sampled_from(["0", "00{cc}", "+{cc}", "{cc}", "+{cc} ", "00 {cc} "]),
    st.sampled_from(["33", "41"]),
    st.from_regex(r"[1-9][0-9]{8}", fullmatch=True),
    st.sampled_from(["FR", "CH"]),
)
def test_e164_fast_path_agrees_with_phonenumbers(
    prefix: str, cc: str, nsn: str, region: str
) -> None:
    import phonenumbers

    given_number = prefix.format(cc=cc) + nsn
    candidate = given_number.replace(" ", "")
    candidate = "+" + candidate[2:] if candidate.startswith("00") else candidate
    if not candidate.startswith(("+", "0")):
        candidate = "+" + candidate
    number = phonenumbers.parse(candidate, region)
    assert phonenumbers.is_possible_number(number)
    expected = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    from parsers.phones import to_e164

    assert to_e164(given_number, region) == expected


@settings(max_examples=300)
@given(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1)))
def test_local_time_fast_path_agrees_with_strptime(moment: datetime) -> None:
    from zoneinfo import ZoneInfo

    from parsers.times import local_time

    text = moment.strftime("%Y-%m-%d %H:%M:%S")
    zone = ZoneInfo("Europe/Paris")
    slow = datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=zone).astimezone(UTC)
    assert local_time(text, ("%Y-%m-%d %H:%M:%S",), zone) == slow


def test_impossible_dates_are_still_payload_errors() -> None:
    with pytest.raises(PayloadError):
        isendpro.parse(request(dlr(date="2024-02-31")))
