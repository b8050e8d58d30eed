"""The parsers' shared helpers (``parsers/text.py``, ``xml.py``, ``times.py``): the shortcuts of
query decoding, XML parsing and local times give what the plain ways give."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from urllib.parse import unquote_to_bytes
from xml.etree.ElementTree import Element, ParseError
from zoneinfo import ZoneInfo

import pytest
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as defused_fromstring
from hypothesis import example, given, settings
from hypothesis import strategies as st

from core.errors import PayloadError
from core.models import Provider
from parsers.dmc_times import iso
from parsers.text import DEFAULT_CHARSETS, decode_query, decode_text, unquote_lenient
from parsers.times import _FAST_FORMATS, local_time, to_utc
from parsers.xml import _without_dtd, parse_xml
from tests.golden import all_cases

_VALID_PERCENT = re.compile(rb"%[0-9A-Fa-f]{2}")


def _unquote_lenient(value: bytes) -> bytes:
    """``unquote_lenient`` as first written."""
    if b"%" not in value:
        return value.replace(b"+", b" ") if b"+" in value else value
    if value.count(b"%") != len(_VALID_PERCENT.findall(value)):
        return value
    return unquote_to_bytes(value.replace(b"+", b" "))


def _decode_query(
    raw: bytes, charsets: Sequence[str] = DEFAULT_CHARSETS, *, lower_keys: bool = False
) -> dict[str, str]:
    """``decode_query`` as first written, without shortcuts: the definition."""
    fields: dict[str, str] = {}
    for part in raw.split(b"&"):
        name, _, value = part.partition(b"=")
        key = decode_text(_unquote_lenient(name.strip()), charsets)
        if not key:
            continue
        if lower_keys:
            key = key.lower()
        fields.setdefault(key, decode_text(_unquote_lenient(value), charsets))
    return fields


# Bytes that matter to the decoding, often; anything else now and then. ASCII queries (the usual
# ones, and those the shortcuts are for) are a strategy of their own.
_ASCII_PIECES = [
    st.sampled_from(
        [b"%", b"+", b"&", b"=", b" ", b"\t", b"\x0b", b"\x1c", b"a", b"F", b"0", b"9", b"g"]
    ),
    st.sampled_from([b"\r", b"\n", b"_", b"=3D", b"=\r\n", b"=\n", b"=="]),  # quoted-printable's
    st.sampled_from([b"%20", b"%41", b"%e9", b"%C3%A9", b"%26", b"%3D", b"%a", b"%%", b"%0"])
    | st.sampled_from([b"%3d", b"%0D%0A", b"%5F", b"%3d%3D", b"%ff", b"%Ff"]),
    st.binary(max_size=3).map(lambda b: bytes(c & 0x7F for c in b)),
]
_OTHER_PIECES = [
    st.sampled_from([b"\xe9", b"\xc3\xa9", b"\xa4", b"\x80", b"\xff", b"\x00"]),
    st.binary(max_size=3),
]
_BYTES = st.one_of(
    st.lists(st.one_of(*_ASCII_PIECES), max_size=40).map(b"".join),
    st.lists(st.one_of(*_ASCII_PIECES, *_OTHER_PIECES), max_size=40).map(b"".join),
)
_CHARSETS = st.sampled_from(
    [
        DEFAULT_CHARSETS,
        ("utf-8", "cp1252"),
        ("cp1252", "iso-8859-1"),
        ["iso-8859-15"],
        ("utf-16",),
        ("utf-7", "latin-1"),
    ]
)


@settings(max_examples=1000)
@given(_BYTES, _CHARSETS, st.booleans())
@example(b"tel=06&libelle=a%a%b&x=STOP%20SMS&x=2", DEFAULT_CHARSETS, False)
@example(b" Name = 1 & name=2&+a=%e9&%20b=\xe9", DEFAULT_CHARSETS, True)
@example(b"a=+&b=%2B&c=%zz+&\x1cd\x1c=1", ("utf-8",), False)
@example(b"a=ab&b=c+d", ("utf-16",), False)
@example(b"a=%C3%A9&b=caf%C3%A9+x&c=%A4&d=%e9%80&e=%C3%A9%a&f=%C3=%A9", DEFAULT_CHARSETS, False)
@example(b"a=%C3%A9&c=%A4&d=%81", ("cp1252", "iso-8859-1"), False)
@example(b"a=%C3%A9&c=%A4&d=%FF", ["iso-8859-15"], False)
def test_decode_query_is_its_definition(
    raw: bytes, charsets: Sequence[str], lower_keys: bool
) -> None:
    assert decode_query(raw, charsets, lower_keys=lower_keys) == _decode_query(
        raw, charsets, lower_keys=lower_keys
    )


@settings(max_examples=500)
@given(_BYTES)
def test_unquote_lenient_is_its_definition(value: bytes) -> None:
    assert unquote_lenient(value) == _unquote_lenient(value)


# -- XML: documents without a DTD skip defusedxml ---------------------------------------------

_LAUGHS = (
    '<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;">]>'
    "<status_report>&lol2;</status_report>"
)
_EXTERNAL = '<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>'


def _defused(document: bytes | str) -> Element | str:
    """What defusedxml alone makes of ``document``: the tree, or the reason it is refused."""
    try:
        return defused_fromstring(document, forbid_dtd=True)
    except DefusedXmlException:
        return "forbidden_xml"
    except (ParseError, ValueError):
        return "invalid_xml"


def _ours(document: bytes | str) -> Element | str:
    try:
        return parse_xml(document)
    except PayloadError as exc:
        return exc.reason


def _tree(node: Element | str) -> object:
    if isinstance(node, str):
        return node
    return (node.tag, node.attrib, node.text, node.tail, [_tree(child) for child in node])


def _xml_inputs() -> list[tuple[str, bytes | str]]:
    found: list[tuple[str, bytes | str]] = []
    for case in all_cases():
        if case.provider is Provider.DMC and not case.input.lstrip().startswith(b"{"):
            found.append((case.id, case.input))
        elif case.provider is Provider.ECAMPAIGN and case.input_kind == "body":
            xml = decode_query(case.input).get("xml")
            if xml is not None:
                found.append((case.id, xml))
    return found


XML_INPUTS = _xml_inputs()


@pytest.mark.parametrize(("name", "document"), XML_INPUTS, ids=[n for n, _ in XML_INPUTS])
def test_golden_xml_parses_as_defusedxml_parses_it(name: str, document: bytes | str) -> None:
    assert _tree(_ours(document)) == _tree(_defused(document))


def test_provider_documents_take_the_fast_path() -> None:
    fast = [name for name, document in XML_INPUTS if _without_dtd(document)]
    assert any(name.startswith("dmc/seed-") for name in fast)
    assert any(name.startswith("ecampaign/") for name in fast)


_UTF16_DECLARATION = '<?xml version="1.0" encoding="UTF-16"?>'
_HIDDEN_DTDS: list[bytes | str] = [
    _LAUGHS,
    _LAUGHS.encode(),
    _EXTERNAL.encode(),
    b"\xef\xbb\xbf" + _LAUGHS.encode(),
    b'<?xml version="1.0" encoding="UTF-8"?>\n' + _LAUGHS.encode(),
    ("\ufeff" + _UTF16_DECLARATION + _LAUGHS).encode("utf-16-le"),
    ("\ufeff" + _UTF16_DECLARATION + _LAUGHS).encode("utf-16-be"),
    (_UTF16_DECLARATION + _LAUGHS).encode("utf-16-le"),  # no BOM: expat guesses from "<\0?\0"
    (_UTF16_DECLARATION + _LAUGHS).encode("utf-16"),
    ("\ufeff" + _LAUGHS).encode("utf-32"),
    # an EBCDIC DTD does not hold the bytes "<!"
    b'<?xml version="1.0" encoding="cp037"?>' + _LAUGHS.encode("cp037"),
    b'<?xml version="1.0" encoding="cp500" standalone="yes"?>' + _LAUGHS.encode("cp500"),
    b'<?xml version="1.0" encoding="utf-8" ?>' + _LAUGHS.encode(),
    b'<?xml version="1.0"?><!-- a comment --><status_report/>',
    b"<status_report><![CDATA[x]]></status_report>",
]


@pytest.mark.parametrize("document", _HIDDEN_DTDS)
def test_documents_that_may_hold_a_dtd_go_to_defusedxml(document: bytes | str) -> None:
    assert not _without_dtd(document)
    assert _tree(_ours(document)) == _tree(_defused(document))
    if "ENTITY" in (document if isinstance(document, str) else document.decode("latin-1")):
        assert _ours(document) == "forbidden_xml"


@pytest.mark.parametrize(
    "document",
    [
        b"<a><b></a>",
        b"<a>&foo;</a>",
        b"",
        b"<a x='1' x='2'/>",
        "<a>é</a>".encode("latin-1"),
        b'<?xml version="1.0" encoding="iso-8859-1"?><a>\xe9</a>',
        b'<?xml version="1.0" encoding="UTF-8" standalone="no"?><a b="&amp;&#233;">x<c/>y</a>',
        '<?xml version="1.0" encoding="cp037"?><a>é</a>',  # text: the declaration is moot
        b"<n:a xmlns:n='urn:x'><n:b n:c='1'/></n:a>",
    ],
)
def test_documents_without_a_dtd_read_as_defusedxml_reads_them(document: bytes | str) -> None:
    assert _without_dtd(document)
    assert _tree(_ours(document)) == _tree(_defused(document))


# -- times ------------------------------------------------------------------------------------

_ZONES = [
    ZoneInfo(name)
    for name in ("Europe/Paris", "Europe/Zurich", "UTC", "Etc/GMT-14", "Etc/GMT+12", "Asia/Kolkata")
]


def _slow_local_time(text: str, zone: ZoneInfo, fmt: str = "%Y-%m-%d %H:%M:%S") -> datetime | str:
    """The fast path's definition: the wall-clock time in ``zone``, in UTC (or why not)."""
    try:
        naive = datetime.strptime(text, fmt)
    except ValueError:
        return "bad_timestamp"  # what local_time says of a text no format reads
    try:
        return to_utc(naive.replace(tzinfo=zone))
    except PayloadError as exc:
        return exc.reason


@settings(max_examples=500)
@given(st.datetimes(), st.sampled_from(_ZONES))
@example(datetime(1, 1, 1), ZoneInfo("Europe/Paris"))  # before year 1 in UTC
@example(datetime(9999, 12, 31, 23, 59, 59), ZoneInfo("Etc/GMT+12"))  # after 9999 in UTC
@example(datetime(2026, 10, 25, 2, 30), ZoneInfo("Europe/Paris"))  # twice: the first one
@example(datetime(2026, 3, 29, 2, 30), ZoneInfo("Europe/Paris"))  # the spring gap
def test_local_time_fast_path_is_its_definition(moment: datetime, zone: ZoneInfo) -> None:
    text = moment.replace(microsecond=0).isoformat(sep=" ")
    try:
        fast: datetime | str = local_time(text, ("%Y-%m-%d %H:%M:%S",), zone)
    except PayloadError as exc:
        fast = exc.reason
    slow = _slow_local_time(text, zone)
    assert fast == slow
    if isinstance(fast, datetime):
        assert fast.tzinfo is UTC


@settings(max_examples=500)
@given(st.datetimes(), st.sampled_from(_ZONES), st.sampled_from(sorted(_FAST_FORMATS)))
@example(datetime(2026, 2, 28, 23, 59, 59), ZoneInfo("Europe/Zurich"), "%d.%m.%Y %H:%M:%S")
def test_every_fast_format_is_its_definition(moment: datetime, zone: ZoneInfo, fmt: str) -> None:
    text = moment.strftime(fmt)
    for wrong in (text, text.replace("28", "31"), text.replace("23", "24")):
        try:
            fast: datetime | str = local_time(wrong, (fmt,), zone)
        except PayloadError as exc:
            fast = exc.reason
        assert fast == _slow_local_time(wrong, zone, fmt), wrong


_OTHER_DIGITS = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")  # Arabic-Indic: \d, int() read them


@pytest.mark.parametrize("fmt", sorted(_FAST_FORMATS))
def test_fast_formats_read_other_digits_as_int_does(fmt: str) -> None:
    """fromisoformat reads ASCII digits only: a text in other digits takes the int() way, and
    means what the same text in ASCII digits means."""
    for zone in _ZONES:
        for moment in (datetime(2026, 2, 28, 23, 59, 59), datetime(2026, 10, 25, 2, 30)):
            text = moment.strftime(fmt)
            assert local_time(text.translate(_OTHER_DIGITS), (fmt,), zone) == local_time(
                text, (fmt,), zone
            )


@settings(max_examples=500)
@given(st.datetimes(timezones=st.sampled_from([UTC, *_ZONES])))
@example(datetime(1, 1, 1, tzinfo=UTC))
@example(datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC))
@example(datetime(2014, 7, 11, 8, 35, 12, 822000, tzinfo=UTC))
def test_dmc_iso_text_is_isoformat(moment: datetime) -> None:
    """DMC's UTC texts in ``details``, written by orjson: what ``isoformat`` writes, ``Z`` for
    ``+00:00``."""
    try:
        expected = moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
    except OverflowError:
        with pytest.raises(OverflowError):
            iso(moment)
        return
    assert iso(moment) == expected


_TIME_TEXTS = st.text(alphabet="0123456789٣.:- T tZz/x%", max_size=22)


@settings(max_examples=1000)
@given(_TIME_TEXTS, st.sampled_from([*sorted(_FAST_FORMATS), "%Y-%m-%dT%H:%M:%S", "%d %b %Y"]))
@example("1Z.07.2014 12:55:15", "%d.%m.%Y %H:%M:%S")
@example("1.7.2014  2:5:1", "%d.%m.%Y %H:%M:%S")
@example("2014-07-11t09:52:12", "%Y-%m-%dT%H:%M:%S")
def test_texts_refused_before_strptime_are_those_it_refuses(text: str, fmt: str) -> None:
    """A text with a character no part of a numeric format reads is refused without strptime:
    only those strptime refuses too."""
    try:
        ours: datetime | str = local_time(text, (fmt,), ZoneInfo("Europe/Zurich"))
    except PayloadError as exc:
        ours = exc.reason
    assert ours == _slow_local_time(text, ZoneInfo("Europe/Zurich"), fmt)
