"""DMC's two dialects, XML (the seed) and JSON (SFR's help pages), read into one shape: a
:class:`Report` of :class:`Medium` elements holding text values only, as XML attributes would
(JSON booleans as ``true``/``false``), with the element kept whole for ``raw``. This module
reads JSON; ``parsers.dmc_xml`` reads XML into the same shape.

Both refuse what nests deeper than any report DMC sends (:data:`MAX_DEPTH`), and a medium they
do not know. Which dialect a body is, and what the media mean, is ``parsers.dmc``'s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec
import orjson

from core.errors import PayloadError
from core.models import Channel
from core.vocabulary import JsonValue

_MEDIA: Mapping[str, Channel] = {
    "sms": Channel.SMS,
    "mms": Channel.MMS,
    "mail": Channel.MAIL,
    "fax": Channel.FAX,
    "call": Channel.VOICE,
    "notif": Channel.PUSH,
}
_CHILDREN = ("status_list", "vxml_info", "transfer")
MAX_DEPTH = 8
"""Deeper than any report DMC sends (report, medium, history, status): refused. Counted from the
medium (1)."""


class Medium(msgspec.Struct, frozen=True, kw_only=True):
    """One media element, the same whether it came as XML or JSON: text values only. (A struct:
    a frozen dataclass sets each field through ``object.__setattr__``, several times slower.)"""

    tag: str
    channel: Channel
    fields: Mapping[str, str]
    history: Sequence[Mapping[str, str]]
    vxml: Mapping[str, str] | None
    transfer: Mapping[str, str] | None
    raw: dict[str, JsonValue]


class Report(msgspec.Struct, frozen=True):
    username: str | None
    media: Sequence[Medium]


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
    if not isinstance(item, dict) or _depth(item) > MAX_DEPTH:
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
        if deepest > MAX_DEPTH:
            break
        if isinstance(current, dict):
            stack.extend((v, level + 1) for v in current.values())
        elif isinstance(current, list):
            stack.extend((v, level + 1) for v in current)
    return deepest


def medium_channel(tag: str) -> Channel | None:
    """The channel of a media element's name; ``None`` for a name that is not a medium."""
    return _MEDIA.get(tag)


def _channel(tag: str) -> Channel:
    channel = _MEDIA.get(tag)
    if channel is None:
        raise PayloadError(f"unknown medium {tag[:40]!r}", reason="unknown_medium")
    return channel
