"""eCampaign's document read in one pass of expat callbacks (``parsers.ecampaign_xml``) gives
what walking the document's ElementTree gives: the same events, byte for byte, or the same
refusal. The tree's walk below is the parser as it was before the one-pass reader replaced it."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from urllib.parse import quote_plus
from xml.etree.ElementTree import Element

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from core.errors import PayloadError
from core.models import Channel, Code, Event, EventData, Kind, Provider, RawRequest, State
from core.vocabulary import JsonValue
from parsers import ecampaign
from parsers.ecampaign import _FAILED_IMPORT, PROVIDER, TIMESTAMP_FORMATS
from parsers.tables import UNKNOWN, code_of, load_tables
from parsers.text import count, decode_query, required
from parsers.times import PARIS, local_time
from parsers.xml import parse_xml
from tests.golden import all_cases

RECEIVED = datetime(2026, 1, 1, tzinfo=UTC)

# -- the definition: the ElementTree of the document, walked -----------------------------------

MAX_DEPTH = 20


def _tree_parse(request: RawRequest) -> list[Event]:
    root = parse_xml(required(decode_query(request.body), "xml"))
    events = [
        _report(element, request) for element in root.iter() if _name(element) == "importfromxml"
    ]
    events += [_tracking(group, request) for group in _message_groups(root)]
    if not events:
        raise PayloadError(
            "neither a tracking callback nor an import report", reason="unknown_callback"
        )
    return events


def _name(element: Element) -> str:
    return element.tag.rpartition("}")[2].lower()


def _fields(elements: Iterable[Element]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for element in elements:
        fields.setdefault(_name(element), (element.text or "").strip())
    return fields


def _raw(
    attributes: dict[str, str], elements: Iterable[Element], depth: int = 0
) -> dict[str, JsonValue]:
    if depth > MAX_DEPTH:
        raise PayloadError("XML nested too deep", reason="invalid_xml")
    raw: dict[str, JsonValue] = dict(attributes)
    for element in elements:
        value = _content(element, depth + 1)
        if element.tag not in raw:
            raw[element.tag] = value
            continue
        previous = raw[element.tag]
        raw[element.tag] = [*previous, value] if isinstance(previous, list) else [previous, value]
    return raw


def _content(element: Element, depth: int) -> JsonValue:
    if len(element) == 0 and not element.attrib:
        return element.text or ""
    raw = _raw(element.attrib, element, depth)
    if len(element) == 0:
        raw["#text"] = element.text or ""
    return raw


def _message_groups(root: Element) -> list[tuple[dict[str, str], list[Element]]]:
    groups: list[tuple[dict[str, str], list[Element]]] = []
    for parent in root.iter():
        if any(_name(child) == "msgid" for child in parent):
            groups += [(parent.attrib, group) for group in _split(list(parent))]
    return groups


def _split(children: list[Element]) -> list[list[Element]]:
    groups: list[list[Element]] = []
    seen: set[str] = set()
    for child in children:
        if not groups or _name(child) in seen:
            groups.append([])
            seen = set()
        groups[-1].append(child)
        seen.add(_name(child))
    return groups


def _tracking(group: tuple[dict[str, str], list[Element]], request: RawRequest) -> Event:
    attributes, elements = group
    fields = _fields(elements)
    code = required(fields, "state")
    if not code:
        raise PayloadError("empty state", reason="missing_field")
    entry = load_tables(PROVIDER)["state"].get(code)
    known = entry or UNKNOWN
    data = EventData(
        provider=PROVIDER,
        channel=known.channel or Channel.SMS,
        kind=known.kind or Kind.DELIVERY,
        state=known.state,
        final=known.final,
        failure=known.failure,
        message_id=required(fields, "msgid") or None,
        status=code_of(code, entry),
        details={"key": code[-1]} if known.state is State.KEY_PRESSED else {},
        raw=_raw(attributes, elements),
        received_at=request.received_at,
    )
    timestamp = fields.get("timestamp")
    return Event.of(data, local_time(timestamp, TIMESTAMP_FORMATS, PARIS) if timestamp else None)


def _report(element: Element, request: RawRequest) -> Event:
    fields = _fields(element)
    outcome = fields.get("state", "")
    imported = fields.get("imported", "")
    errors: list[JsonValue] = [
        (error.text or "").strip()
        for child in element
        if _name(child) == "errors"
        for error in child
        if _name(error) == "error"
    ]
    data = EventData(
        provider=PROVIDER,
        channel=Channel.SMS,
        kind=Kind.REPORT,
        state=State.FAILED if outcome.casefold() in _FAILED_IMPORT else State.COMPLETED,
        final=True,
        status=Code(code=outcome) if outcome else None,
        details={"imported": count(imported), "errors": errors},
        raw=_raw(element.attrib, element),
        received_at=request.received_at,
    )
    return Event.of(data)


# -- the comparison ----------------------------------------------------------------------------


def _request(body: bytes) -> RawRequest:
    return RawRequest(
        provider=Provider.ECAMPAIGN,
        callback="tracking",
        method="POST",
        body=body,
        content_type="application/x-www-form-urlencoded",
        received_at=RECEIVED,
    )


def _outcome(parse: object, body: bytes) -> object:
    """What ``parse`` makes of the form ``body``: its events' JSON documents (the bytes the
    journal stores: key order included), or the reason of its refusal."""
    try:
        events = parse(_request(body))  # type: ignore[operator]
    except PayloadError as exc:
        return exc.reason
    return [event.to_json() for event in events]


def _same(document: str) -> None:
    body = b"xml=" + quote_plus(document).encode()
    assert _outcome(ecampaign.parse, body) == _outcome(_tree_parse, body)


# -- documents ---------------------------------------------------------------------------------

_TAGS = ["msgid", "state", "timestamp", "MsgId", "STATE", "n:msgid", "message", "x"]
_REPORT_TAGS = ["importFromXml", "importfromxml", "n:importFromXml", "errors", "error"]
_MORE_TAGS = ["imported", "state", "errors", "error", "msgid", "y"]
_NAMES = ["id", "msgid", "state", "n:id", "xmlns:m", "type"]
_TEXT = st.one_of(
    st.sampled_from(["4", "23", "99", "1", "57", "KO", "ok", "118", " 12 ", "", "\n  "]),
    st.sampled_from(["2017-01-16 14:05:09", "2017:07:03 09:15:42", "16/01/2017", "M1"]),
    st.text(alphabet=" \t\r\n\u00a0ab<&é€5", max_size=6).map(
        lambda t: t.replace("&", "&amp;").replace("<", "&lt;")
    ),
)
_VALUE = st.text(alphabet="ab \"'<&\n\té", max_size=5).map(
    lambda t: t.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")
)
_PIECES = st.sampled_from(["", "", "", "<!-- c -->", "<![CDATA[4]]>", "<?pi x?>"])


def _element(children: st.SearchStrategy[list[str]], tags: list[str]) -> st.SearchStrategy[str]:
    @st.composite
    def build(draw: st.DrawFn) -> str:
        tag = draw(st.sampled_from(tags))
        names = draw(st.lists(st.sampled_from(_NAMES), max_size=2, unique=True))
        names = names if draw(st.integers(0, 3)) == 0 else []  # mostly without attributes
        attrs = "".join(f' {n}="{draw(_VALUE) if n != "xmlns:m" else "urn:m"}"' for n in names)
        inner = [draw(_TEXT), draw(_PIECES)]
        for child in draw(children):
            inner += [child, draw(_TEXT) if draw(st.booleans()) else ""]
        return f"<{tag}{attrs}>{''.join(inner)}</{tag}>"

    return build()


_LEAVES = _element(st.just([]), _TAGS + _MORE_TAGS)
_ELEMENTS = st.recursive(
    _LEAVES,
    lambda inner: _element(st.lists(inner, max_size=4), _TAGS + _REPORT_TAGS + _MORE_TAGS),
    max_leaves=12,
)


@st.composite
def _message(draw: st.DrawFn) -> str:
    """A message as documented (``msgid``, ``state``, maybe ``timestamp``), maybe wrapped."""
    msgid = draw(st.sampled_from(["msgid", "MsgId", "n:msgid"]))
    parts = [f"<{msgid}>{draw(st.sampled_from(['M1', ' M2 ', '']))}</{msgid}>"]
    parts.append(f"<state>{draw(st.sampled_from(['4', '23', '99', '57', ' 1 ']))}</state>")
    if draw(st.booleans()):
        stamp = draw(st.sampled_from(["2017-01-16 14:05:09", "2017:10:29 02:30:00", "x", " "]))
        parts.append(f"<timestamp>{stamp}</timestamp>")
    message = "".join(draw(st.permutations(parts)) if draw(st.booleans()) else parts)
    return f"<message>{message}</message>" if draw(st.booleans()) else message


@st.composite
def _import(draw: st.DrawFn) -> str:
    """An import report as documented, its parts in any order."""
    parts = [
        f"<state>{draw(st.sampled_from(['OK', 'KO', 'Erreur', '']))}</state>",
        f"<imported>{draw(st.sampled_from(['118', '0', 'x', '99999999999999999999']))}</imported>",
        "<errors><error>Ligne 12</error><error> b </error></errors>",
    ]
    return f"<importFromXml>{''.join(draw(st.permutations(parts)))}</importFromXml>"


_CHILDREN = st.one_of(_ELEMENTS, _message(), _message(), _import())


@st.composite
def _documents(draw: st.DrawFn) -> str:
    root = draw(st.sampled_from(["ecampaign"] * 5 + ["list", "n:ecampaign", "importFromXml"]))
    declare = draw(
        st.sampled_from([' xmlns:n="urn:n"'] * 3 + [""] * 3 + [' xmlns="d" xmlns:n="n"'])
    )
    attrs = draw(st.sampled_from(["", "", ' id="7"', ' msgid="1" n:x="1"']))
    children = draw(st.lists(_CHILDREN, max_size=5))
    body = f"<{root}{declare}{attrs}>{draw(_TEXT)}{''.join(children)}</{root}>"
    if "xmlns:n" not in declare and draw(st.integers(0, 5)):  # mostly no unbound prefix
        body = body.replace("<n:", "<").replace("</n:", "</").replace(" n:", " ")
    prolog = draw(st.sampled_from(["", '<?xml version="1.0"?>', '<?xml version="1.0"?>\n']))
    document = prolog + body
    if draw(st.sampled_from([False] * 7 + [True])) is False:  # mostly whole
        return document
    return document[: draw(st.integers(min_value=0, max_value=len(document)))]  # cut short


def _nested(levels: int, leaf: str = "<a>1</a>") -> str:
    return "<a>" * levels + leaf + "</a>" * levels


@settings(max_examples=1000)
@given(_documents() | st.text(max_size=100))
@example("<ecampaign><msgid>A</msgid><state>4</state></ecampaign>")
@example("<ecampaign><message><msgid>A</msgid><state>4</state></message><msgid/></ecampaign>")
@example("<e><msgid>A</msgid><state>1</state><msgid>B</msgid><STATE>4</STATE><state/></e>")
@example('<e x="1"><x>2</x><msgid>A</msgid><state>4</state><x a="b"/></e>')
@example("<e><importFromXml><importFromXml/><msgid>A</msgid><state>4</state></importFromXml></e>")
@example("<e><importFromXml><errors><error> a </error><x/><error/></errors></importFromXml></e>")
@example('<importFromXml a="1"/>')
@example("<e><msgid>A<b/>c</msgid><state>4<!-- c -->5</state></e>")
@example("<e><msgid>A</msgid><state>4</state>" + _nested(19) + "</e>")
@example("<e><msgid>A</msgid><state>4</state>" + _nested(20) + "</e>")
@example("<e><msgid>A</msgid><state>4</state>" + _nested(19, '<a b="1"/>') + "</e>")
@example("<e><msgid>A</msgid><state>4</state>" + _nested(20, '<a b="1"/>') + "</e>")
@example("<e><importFromXml>" + _nested(19) + "</importFromXml></e>")
@example("<e><importFromXml>" + _nested(20) + "</importFromXml></e>")
@example("<e><importFromXml>" + _nested(50) + "</importFromXml><msgid>A</msgid></e>")
@example("<e><msgid>A</msgid><state>4</state><timestamp>x</timestamp>" + _nested(30) + "</e>")
@example('<e xmlns:n="u}v"><n:msgid n:a="1" a="2">A</n:msgid><state>4</state></e>')
@example("<e><n:msgid>A</n:msgid></e>")  # unbound prefix
def test_one_pass_reads_what_the_tree_reads(document: str) -> None:
    _same(document)


_REFUSED = [
    '<!DOCTYPE e [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;">]><e><msgid>&b;</msgid></e>',
    '<!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/passwd">]><e><msgid>&x;</msgid></e>',
    '<!DOCTYPE ecampaign SYSTEM "http://example.com/x.dtd"><ecampaign/>',
    "<!DOCTYPE ecampaign><ecampaign/>",
    "<ecampaign><msgid>&foo;</msgid><state>4</state></ecampaign>",
    "",
    "<a></b>",
]


@pytest.mark.parametrize("document", _REFUSED)
def test_dtds_entities_and_broken_xml_are_refused_as_the_tree_refuses_them(document: str) -> None:
    _same(document)
    with pytest.raises(PayloadError):
        ecampaign.parse(_request(b"xml=" + quote_plus(document).encode()))


def test_every_golden_case_reads_as_the_tree_reads_it() -> None:
    bodies = [c.input for c in all_cases() if c.provider is Provider.ECAMPAIGN]
    assert len(bodies) >= 10
    for body in bodies:
        assert _outcome(ecampaign.parse, body) == _outcome(_tree_parse, body)
