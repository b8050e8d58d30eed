"""DMC's XML read in one pass of expat callbacks (``parsers.dmc_xml``) gives what reading the
document's ElementTree gives: the same media, or the same refusal. The tree's reading below is
the parser as it was before the one-pass reader replaced it."""

from __future__ import annotations

from xml.etree.ElementTree import Element

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from core.errors import PayloadError
from core.vocabulary import JsonValue
from parsers.dmc_dialects import MAX_DEPTH, Medium, Report, medium_channel
from parsers.dmc_xml import xml_report
from parsers.xml import parse_xml
from tests.golden import all_cases

# -- the definition: the ElementTree of the document, walked -----------------------------------


def _tree_report(body: bytes) -> Report:
    root = parse_xml(body)
    if root.tag != "status_report":
        raise PayloadError(f"root element {root.tag!r}", reason="unknown_document")
    header: dict[str, JsonValue] = {f"@{k}": v for k, v in root.attrib.items()}
    return Report(root.get("username"), [_tree_medium(child, header) for child in root])


def _tree_medium(element: Element, header: dict[str, JsonValue]) -> Medium:
    vxml = element.find(".//vxml_info")
    transfer = element.find(".//transfer")
    channel = medium_channel(element.tag)
    if channel is None:
        raise PayloadError(f"unknown medium {element.tag[:40]!r}", reason="unknown_medium")
    return Medium(
        tag=element.tag,
        channel=channel,
        fields=dict(element.attrib),
        history=[dict(child.attrib) for child in element.findall("status")],
        vxml=None if vxml is None else dict(vxml.attrib),
        transfer=None if transfer is None else dict(transfer.attrib),
        raw={**header, element.tag: _tree_raw(element, 1)},
    )


def _tree_raw(element: Element, depth: int) -> dict[str, JsonValue]:
    if depth > MAX_DEPTH:
        raise PayloadError("XML nested too deeply", reason="invalid_xml")
    out: dict[str, JsonValue] = {f"@{k}": v for k, v in element.attrib.items()}
    children: dict[str, list[JsonValue]] = {}
    for child in element:
        children.setdefault(child.tag, []).append(_tree_raw(child, depth + 1))
    out.update(children)
    if element.text and element.text.strip():
        out["#text"] = element.text
    return out


def _outcome(read: object, body: bytes) -> object:
    """What ``read`` makes of ``body``: the report (its media as plain values, dict order
    included), or the reason of its refusal."""
    try:
        report = read(body)  # type: ignore[operator]
    except PayloadError as exc:
        return exc.reason
    assert isinstance(report, Report)
    return (
        report.username,
        [
            _ordered([m.tag, m.channel, m.fields, m.history, m.vxml, m.transfer, m.raw])
            for m in report.media
        ],
    )


def _ordered(value: object) -> object:
    """A value with the order of its dicts' keys made visible (``==`` on dicts ignores it)."""
    if isinstance(value, dict):
        return [(k, _ordered(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [_ordered(v) for v in value]
    return value


def _same(body: bytes) -> None:
    assert _outcome(xml_report, body) == _outcome(_tree_report, body)


# -- documents ---------------------------------------------------------------------------------

_TAGS = ["sms", "call", "notif", "status", "status", "vxml_info", "transfer", "x", "n:sms", "y"]
_NAMES = ["to", "status", "type", "date", "code", "info", "username", "n:to", "xmlns:m"]
_TEXT = st.text(alphabet=" \t\r\n\u00a0\u2028ab<&é€", max_size=6).map(
    lambda t: t.replace("&", "&amp;").replace("<", "&lt;")
)
_VALUE = st.text(alphabet="ab \"'<&\n\té", max_size=5).map(
    lambda t: t.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")
)


def _element(
    children: st.SearchStrategy[list[str]], tags: list[str] = _TAGS
) -> st.SearchStrategy[str]:
    @st.composite
    def build(draw: st.DrawFn) -> str:
        tag = draw(st.sampled_from(tags))
        names = draw(st.lists(st.sampled_from(_NAMES), max_size=3, unique=True))
        attrs = "".join(f' {n}="{draw(_VALUE)}"' for n in names)
        inner = [draw(_TEXT)]
        for child in draw(children):
            inner += [child, draw(_TEXT)]
        return f"<{tag}{attrs}>{''.join(inner)}</{tag}>"

    return build()


_ELEMENTS = st.recursive(
    _element(st.just([])),
    lambda inner: _element(st.lists(inner, max_size=3)),
    max_leaves=10,
)
_MEDIA = _element(st.lists(_ELEMENTS, max_size=3), ["sms", "call", "mail", "fax", "sms", "x"])


@st.composite
def _reports(draw: st.DrawFn) -> bytes:
    root = draw(st.sampled_from(["status_report"] * 6 + ["report", "n:status_report"]))
    declare = draw(st.sampled_from([' xmlns:n="urn:n"'] * 4 + ["", ' xmlns="urn:d" xmlns:n="n"']))
    attrs = draw(st.sampled_from(["", ' username="1234"', ' username=" " n:x="1"']))
    media = draw(st.lists(_MEDIA, max_size=3))
    body = f"<{root}{declare}{attrs}>{draw(_TEXT)}{''.join(media)}</{root}>"
    prolog = draw(st.sampled_from(["", '<?xml version="1.0" encoding="UTF-8"?>\n', "\ufeff"]))
    document = (prolog + body).encode()
    if draw(st.sampled_from([False] * 7 + [True])) is False:  # mostly whole
        return document
    return document[: draw(st.integers(min_value=0, max_value=len(document)))]  # cut short


@settings(max_examples=500)
@given(_reports() | st.binary(max_size=200))
@example(
    b"<status_report><sms status='SENT'>" + b"<a>" * 9 + b"</a>" * 9 + b"</sms></status_report>"
)
@example(
    b"<status_report><sms status='SENT'>" + b"<a>" * 8 + b"</a>" * 8 + b"</sms></status_report>"
)
@example(
    b"<status_report><whatsapp/><sms>" + b"<a>" * 20 + b"</a>" * 20 + b"</sms></status_report>"
)
@example(
    b"<status_report><sms>" + b"<a>" * 20 + b"</a>" * 20 + b"</sms><whatsapp/></status_report>"
)
@example(b"<report><whatsapp/></report>")
@example(b"<status_report><whatsapp/><sms></status_report>")
@example(
    b"<status_report><sms>a<!-- c -->b<![CDATA[<c>]]>d<?pi x?>e<status/>f</sms></status_report>"
)
@example(
    b"<status_report><sms>\n  <status type='1'>t<vxml_info a='1'/></status></sms></status_report>"
)
@example(
    b"<status_report><call><status><vxml_info a='2'><vxml_info a='3'/></vxml_info></status>"
    b"<vxml_info a='4'/><transfer to='1'/><x><transfer to='2'/></x></call></status_report>"
)
@example(b'<status_report xmlns:n="u}v"><sms n:to="1" to="2"><n:status/></sms></status_report>')
@example(b"<status_report><sms><n:status/></sms></status_report>")  # unbound prefix
@example(
    '<?xml version="1.0" encoding="UTF-16"?><status_report><sms/></status_report>'.encode("utf-16")
)
@example(
    b'<?xml version="1.0" encoding="iso-8859-1"?><status_report u="\xe9"><sms/></status_report>'
)
@example(b'<?xml version="1.0" encoding="cp037"?>' + "<status_report/>".encode("cp037"))
@example(b'<?xml version="1.0" encoding="big5"?><status_report/>')
def test_one_pass_reads_what_the_tree_reads(body: bytes) -> None:
    _same(body)


_REFUSED = [
    b'<!DOCTYPE r [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;">]><status_report username="&b;"/>',
    b'<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><status_report>&x;</status_report>',
    b'<!DOCTYPE status_report SYSTEM "http://example.com/x.dtd"><status_report/>',
    b"<!DOCTYPE status_report><status_report/>",
    '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE r [<!ENTITY a "a">]><status_report/>'.encode(
        "utf-16"
    ),
    b"<status_report>&foo;</status_report>",
]


@pytest.mark.parametrize("body", _REFUSED)
def test_dtds_and_entities_are_refused_as_the_tree_refuses_them(body: bytes) -> None:
    _same(body)
    with pytest.raises(PayloadError):
        xml_report(body)


def test_every_golden_xml_document_reads_as_the_tree_reads_it() -> None:
    bodies = [
        c.input
        for c in all_cases()
        if c.provider.value == "dmc" and not c.input.lstrip(b"\xef\xbb\xbf \r\n\t").startswith(b"{")
    ]
    assert len(bodies) > 10
    for body in bodies:
        _same(body)
