"""DMC's two dialects, XML (the seed) and JSON (SFR's help pages), read into one shape: a
:class:`Report` of :class:`Medium` elements holding text values only, as XML attributes would
(JSON booleans as ``true``/``false``), with the element kept whole for ``raw``.

Both refuse what nests deeper than any report DMC sends (``_MAX_DEPTH``), and a medium they do
not know. Which dialect a body is, and what the media mean, is ``parsers.dmc``'s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from xml.etree.ElementTree import Element

import orjson

from core.errors import PayloadError
from core.models import Channel
from core.vocabulary import JsonValue
from parsers.xml import parse_xml

_MEDIA: Mapping[str, Channel] = {
    "sms": Channel.SMS,
    "mms": Channel.MMS,
    "mail": Channel.MAIL,
    "fax": Channel.FAX,
    "call": Channel.VOICE,
    "notif": Channel.PUSH,
}
_CHILDREN = ("status_list", "vxml_info", "transfer")
_MAX_DEPTH = 8
"""Deeper than any report DMC sends (report, medium, history, status): refused."""


@dataclass(frozen=True, slots=True)
class Medium:
    """One media element, the same whether it came as XML or JSON: text values only."""

    tag: str
    channel: Channel
    fields: Mapping[str, str]
    history: Sequence[Mapping[str, str]]
    vxml: Mapping[str, str] | None
    transfer: Mapping[str, str] | None
    raw: dict[str, JsonValue]


@dataclass(frozen=True, slots=True)
class Report:
    username: str | None
    media: Sequence[Medium]


def xml_report(body: bytes) -> Report:
    root = parse_xml(body)
    if root.tag != "status_report":
        raise PayloadError(f"root element {root.tag!r}", reason="unknown_document")
    header: dict[str, JsonValue] = {f"@{k}": v for k, v in root.attrib.items()}
    return Report(root.get("username"), [_xml_medium(child, header) for child in root])


def _xml_medium(element: Element, header: dict[str, JsonValue]) -> Medium:
    vxml = descendant(element, "vxml_info")  # beside the statuses (2.9.5) or inside one (2.9)
    transfer = descendant(element, "transfer")
    return Medium(
        tag=element.tag,
        channel=_channel(element.tag),
        fields=dict(element.attrib),
        # element.findall("status") without ElementPath's overhead: the children named status
        history=[dict(child.attrib) for child in element if child.tag == "status"],
        vxml=None if vxml is None else dict(vxml.attrib),
        transfer=None if transfer is None else dict(transfer.attrib),
        raw={**header, element.tag: _xml_raw(element, 1)},
    )


def descendant(element: Element, tag: str) -> Element | None:
    """``element.find(f".//{tag}")`` without ElementPath's overhead: the first descendant named
    ``tag``, in document order."""
    for child in element:
        found = next(child.iter(tag), None)
        if found is not None:
            return found
    return None


def _xml_raw(element: Element, depth: int) -> dict[str, JsonValue]:
    """An element as JSON: ``@name`` for attributes, a list per child tag, ``#text`` if any."""
    if depth > _MAX_DEPTH:
        raise PayloadError("XML nested too deeply", reason="invalid_xml")
    out: dict[str, JsonValue] = {f"@{k}": v for k, v in element.attrib.items()}
    children: dict[str, list[JsonValue]] = {}
    for child in element:
        children.setdefault(child.tag, []).append(_xml_raw(child, depth + 1))
    out.update(children)
    if element.text and element.text.strip():
        out["#text"] = element.text
    return out


def json_report(body: bytes) -> Report:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PayloadError(f"unreadable JSON: {exc}", reason="bad_json") from exc
    report = doc.get("status_report") if isinstance(doc, dict) else None
    if not isinstance(report, dict):
        raise PayloadError("no status_report object", reason="unknown_document")
    header = {k: v for k, v in report.items() if not isinstance(v, dict | list)}
    media = [
        _json_medium(tag, item, header)
        for tag, value in report.items()
        if tag not in header
        for item in (value if isinstance(value, list) else [value])
    ]
    return Report(_as_attribute(report.get("username")), media)


def _json_medium(tag: str, item: JsonValue, header: dict[str, JsonValue]) -> Medium:
    channel = _channel(tag)
    if not isinstance(item, dict) or _depth(item) > _MAX_DEPTH:
        raise PayloadError(f"{tag}: not a media object", reason="bad_element")
    history = item.get("status_list", [])
    if not isinstance(history, list) or not all(isinstance(s, dict) for s in history):
        raise PayloadError(f"{tag}: status_list is not a list of objects", reason="bad_element")
    return Medium(
        tag=tag,
        channel=channel,
        fields=_texts({k: v for k, v in item.items() if k not in _CHILDREN}),
        history=[_texts(status) for status in history if isinstance(status, dict)],
        vxml=_json_child(item, "vxml_info"),
        transfer=_json_child(item, "transfer"),
        raw={**header, tag: item},
    )


def _json_child(item: Mapping[str, JsonValue], name: str) -> dict[str, str] | None:
    value = item.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise PayloadError(f"{name} is not an object", reason="bad_element")
    return _texts(value)


def _texts(values: Mapping[str, JsonValue]) -> dict[str, str]:
    """The scalar values of a JSON object as text, the way XML attributes would carry them."""
    return {k: text for k, v in values.items() if (text := _as_attribute(v)) is not None}


def _as_attribute(value: JsonValue) -> str | None:
    """A JSON scalar as the text an XML attribute would carry (``true``/``false`` for booleans);
    ``None`` for null, objects and lists."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return None


def _depth(value: JsonValue) -> int:
    """How deep a JSON value nests (a scalar is 0), without recursion."""
    deepest = 0
    stack: list[tuple[JsonValue, int]] = [(value, 0)]
    while stack:
        current, level = stack.pop()
        deepest = max(deepest, level)
        if deepest > _MAX_DEPTH:
            break
        if isinstance(current, dict):
            stack.extend((v, level + 1) for v in current.values())
        elif isinstance(current, list):
            stack.extend((v, level + 1) for v in current)
    return deepest


def _channel(tag: str) -> Channel:
    channel = _MEDIA.get(tag)
    if channel is None:
        raise PayloadError(f"unknown medium {tag[:40]!r}", reason="unknown_medium")
    return channel
