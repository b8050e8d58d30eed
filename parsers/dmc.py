"""DMC, SFR Business "Diffusion Multi Canal" (seed 001, section 2.9): CRA pushed by HTTP POST.

One callback, ``cra``: DMC POSTs a raw (not form-encoded) ``status_report`` to the URL given when
the service is set up, as XML (the seed) or as JSON (SFR's help pages; the shape is in
``docs/providers.md``). A body whose first non-blank byte is ``{`` is JSON, anything else XML.

- ``<status_report username="SERVICE_ID">`` holds one or several media elements (``sms``, ``mms``,
  ``mail``, ``fax``, ``call``, ``notif``), each with ``to status call_id broadcast_id contact_id
  ref_externe space_id date`` and its history: ``<status date type time amd size page code info/>``
  elements (all but date and type optional), plus ``<vxml_info voicemail start end termination
  result route/>`` and ``<transfer to/>`` for calls. JSON: ``{"status_report": {"username": ...,
  "<medium>": [{..., "status_list": [...], "status": ...}]}}``.
- Every media element gives one event; its state is the element's ``status`` (else the last type of
  its history), read in ``tables/dmc.toml``; the history stays in ``details``. A failure's ``code``
  (annex 5.4, ``CRA_*``; numeric codes occur too) gives ``error`` and the failure class.
- ``ANSWERED`` is the contact's SMS reply: an inbound event whose text is the status ``info``.
- Dates: ``2014-07-11 09:52:12`` (French local time), ``2016-11-08 13:16:56 CET`` (CET, CEST, UTC
  or GMT), ISO-8601 (``2019-03-28T09:42:47Z``); ``vxml_info`` start/end are epoch milliseconds.

Acknowledgement contract: not specified by the seed beyond the push itself; HTTP 200 (body ``OK``)
once the events are safe, 400 for a document we cannot read (DTDs and entities are refused),
503 when the hub cannot keep the events, so that DMC tries again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from xml.etree.ElementTree import Element
from zoneinfo import ZoneInfo

import orjson
from pydantic import JsonValue

from core.errors import PayloadError
from core.models import (
    Channel,
    Code,
    Event,
    EventData,
    Failure,
    Kind,
    Provider,
    RawRequest,
    State,
)
from parsers.base import Callback, bad_request, ok, unavailable
from parsers.phones import to_e164
from parsers.tables import FAILURES, UNKNOWN, TableEntry, code_of, load_tables
from parsers.text import count, optional, without_bom
from parsers.times import PARIS, iso_time, local_time
from parsers.xml import parse_xml

PROVIDER = Provider.DMC
CALLBACKS: Sequence[Callback] = (
    Callback("cra", ("POST",), "CRA push (section 2.9): status_report in XML or JSON"),
)

_MEDIA: Mapping[str, Channel] = {
    "sms": Channel.SMS,
    "mms": Channel.MMS,
    "mail": Channel.MAIL,
    "fax": Channel.FAX,
    "call": Channel.VOICE,
    "notif": Channel.PUSH,
}
_PHONE_MEDIA = frozenset({"sms", "mms", "fax", "call"})
_CODE_TABLES: Mapping[str, str] = {
    "sms": "cra_sms",
    "mms": "cra_mms",
    "call": "cra_vocal",
    "fax": "cra_fax",
    "mail": "cra_email",
    "notif": "cra_notif",
}
_CHILDREN = ("status_list", "vxml_info", "transfer")
_MAX_DEPTH = 8
"""Deeper than any report DMC sends (report, medium, history, status): refused."""

_LOCAL_FORMATS = ("%Y-%m-%d %H:%M:%S",)
_ZONES: Mapping[str, ZoneInfo] = {
    "CET": ZoneInfo("Etc/GMT-1"),  # POSIX sign: Etc/GMT-1 is UTC+01:00
    "CEST": ZoneInfo("Etc/GMT-2"),
    "UTC": ZoneInfo("UTC"),
    "GMT": ZoneInfo("UTC"),
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_MS = re.compile(r"[0-9]{1,15}")
_DETAIL_CODE = re.compile(r"(?P<name>[A-Z0-9_]+)\{(?P<detail>.*)\}", re.DOTALL)
_ROUTE_STEP = re.compile(r"(?P<node>.*)\((?P<node_id>[^()]*)\):(?P<choice>.*)", re.DOTALL)


@dataclass(frozen=True, slots=True)
class _Medium:
    """One media element, the same whether it came as XML or JSON: text values only."""

    tag: str
    channel: Channel
    fields: Mapping[str, str]
    history: Sequence[Mapping[str, str]]
    vxml: Mapping[str, str] | None
    transfer: Mapping[str, str] | None
    raw: dict[str, JsonValue]


@dataclass(frozen=True, slots=True)
class _Report:
    username: str | None
    media: Sequence[_Medium]


def parse(request: RawRequest) -> list[Event]:
    body = without_bom(request.body).lstrip()
    report = _json_report(body) if body.startswith(b"{") else _xml_report(request.body)
    return [_event(report.username, medium, request) for medium in report.media]


# The acknowledgement contract: 200 once safe, 400 for input we cannot read, 503 to be retried.
ack, nack, retry = ok, bad_request, unavailable


# -- XML --------------------------------------------------------------------------------------


def _xml_report(body: bytes) -> _Report:
    root = parse_xml(body)
    if root.tag != "status_report":
        raise PayloadError(f"root element {root.tag!r}", reason="unknown_document")
    header: dict[str, JsonValue] = {f"@{k}": v for k, v in root.attrib.items()}
    return _Report(root.get("username"), [_xml_medium(child, header) for child in root])


def _xml_medium(element: Element, header: dict[str, JsonValue]) -> _Medium:
    vxml = _descendant(element, "vxml_info")  # beside the statuses (2.9.5) or inside one (2.9)
    transfer = _descendant(element, "transfer")
    return _Medium(
        tag=element.tag,
        channel=_channel(element.tag),
        fields=dict(element.attrib),
        history=[dict(status.attrib) for status in element.findall("status")],
        vxml=None if vxml is None else dict(vxml.attrib),
        transfer=None if transfer is None else dict(transfer.attrib),
        raw={**header, element.tag: _xml_raw(element, 1)},
    )


def _descendant(element: Element, tag: str) -> Element | None:
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


# -- JSON -------------------------------------------------------------------------------------


def _json_report(body: bytes) -> _Report:
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
    return _Report(_as_attribute(report.get("username")), media)


def _json_medium(tag: str, item: JsonValue, header: dict[str, JsonValue]) -> _Medium:
    channel = _channel(tag)
    if not isinstance(item, dict) or _depth(item) > _MAX_DEPTH:
        raise PayloadError(f"{tag}: not a media object", reason="bad_element")
    history = item.get("status_list", [])
    if not isinstance(history, list) or not all(isinstance(s, dict) for s in history):
        raise PayloadError(f"{tag}: status_list is not a list of objects", reason="bad_element")
    return _Medium(
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


# -- events -----------------------------------------------------------------------------------


def _channel(tag: str) -> Channel:
    channel = _MEDIA.get(tag)
    if channel is None:
        raise PayloadError(f"unknown medium {tag[:40]!r}", reason="unknown_medium")
    return channel


def _event(username: str | None, medium: _Medium, request: RawRequest) -> Event:
    status = optional(medium.fields, "status") or _last_type(medium.history)
    if status is None:
        raise PayloadError(f"{medium.tag}: no status", reason="missing_field")
    current = _current(medium.history, status)
    status_entry = _status_entry(medium.tag, status)
    code = optional(current, "code")
    code_entry = _code_entry(medium.tag, code)
    entry = _outcome(status_entry, code_entry)
    known = entry or UNKNOWN
    state = known.state
    kind = known.kind or Kind.DELIVERY
    inbound = kind is Kind.INBOUND
    details = _details(username, medium, current, inbound=inbound)
    error = _error(code, code_entry, state, details)
    address = _address(medium.tag, medium.fields.get("to"))
    call_id = optional(medium.fields, "call_id")
    data = EventData.trusted(
        provider=PROVIDER,
        channel=medium.channel,
        kind=kind,
        state=state,
        final=known.final,
        failure=_failure(state, entry, code_entry),
        message_id=None if inbound else call_id,
        reference=optional(medium.fields, "ref_externe"),
        related_message_id=call_id if inbound else None,
        recipient=None if inbound else address,
        sender=address if inbound else None,
        status=code_of(status, status_entry),
        error=error,
        text=current.get("info", "") if inbound else None,
        details=details,
        raw=medium.raw,
        received_at=request.received_at,
    )
    return Event.of(data, _when(medium.fields, current))


def _last_type(history: Sequence[Mapping[str, str]]) -> str | None:
    return optional(history[-1], "type") if history else None


def _current(history: Sequence[Mapping[str, str]], status: str) -> Mapping[str, str]:
    """The history entry of the current status (the last of that type), else the last one."""
    for entry in reversed(history):
        if entry.get("type", "").strip() == status:
            return entry
    return history[-1] if history else {}


def _status_entry(tag: str, status: str) -> TableEntry | None:
    tables = load_tables(PROVIDER)
    override = tables.get(f"status_{tag}", {}).get(status)
    return override or tables["status"].get(status)


def _code_entry(tag: str, code: str | None) -> TableEntry | None:
    """The annex 5.4 entry of ``code``: the medium's table first, then all media, then the rest."""
    if code is None:
        return None
    match = _DETAIL_CODE.fullmatch(code)
    key = f"{match['name']}{{DETAIL}}" if match else code
    tables = load_tables(PROVIDER)
    first = (_CODE_TABLES[tag], "cra_all")
    names = [*first, *(n for n in tables if n.startswith("cra_") and n not in first)]
    return next((tables[n][key] for n in names if key in tables[n]), None)


def _error(
    code: str | None,
    entry: TableEntry | None,
    state: State,
    details: dict[str, JsonValue],
) -> Code | None:
    """The error of a failure (or of an unknown status); a success's code goes to ``details``,
    and so does the parameter of a ``CRA_NAME{...}`` code."""
    if code is None:
        return None
    found = code_of(code, entry)
    match = _DETAIL_CODE.fullmatch(code)
    if match:
        details["code_detail"] = match["detail"]
    if state in FAILURES or state is State.UNKNOWN:
        return found
    details["code"] = {"code": found.code, "meaning": found.meaning}  # found.model_dump()
    return None


def _failure(state: State, entry: TableEntry | None, code: TableEntry | None) -> Failure | None:
    """The failure class: the code's when it tells one, else the status's."""
    if state not in FAILURES:
        return None
    return (code.failure if code else None) or (entry.failure if entry else None)


def _outcome(status: TableEntry | None, code: TableEntry | None) -> TableEntry | None:
    """What decides the event: the status, made precise by a failure code (expired, cancelled);
    the code alone when the status is unknown."""
    if status is None:
        return code
    if status.state is State.FAILED and code is not None and code.state in FAILURES:
        return code
    return status


def _address(tag: str, value: str | None) -> str | None:
    if tag in _PHONE_MEDIA:
        return to_e164(value)
    return (value or "").strip() or None  # an e-mail address or a push token, as given


def _when(fields: Mapping[str, str], current: Mapping[str, str]) -> datetime | None:
    value = optional(fields, "date") or optional(current, "date")
    return None if value is None else _time(value)


# -- details ----------------------------------------------------------------------------------


def _details(
    username: str | None,
    medium: _Medium,
    current: Mapping[str, str],
    *,
    inbound: bool,
) -> dict[str, JsonValue]:
    details: dict[str, JsonValue] = {}
    if username is not None:
        details["username"] = username
    for name in ("broadcast_id", "contact_id", "space_id"):
        value = optional(medium.fields, name)
        if value is not None:
            details[name] = value
    details["history"] = [_step(status) for status in medium.history]
    facts = _facts(current)
    if inbound:
        facts.pop("info", None)  # it is the event's text
    details.update(facts)
    if medium.vxml is not None:
        details["vxml"] = _vxml(medium.vxml)
    if medium.transfer is not None:
        details["transfer_to"] = to_e164(medium.transfer.get("to"))
    return details


def _step(status: Mapping[str, str]) -> dict[str, JsonValue]:
    """One history entry: type, UTC date, the facts of that status and its code."""
    step: dict[str, JsonValue] = {}
    if "type" in status:
        step["type"] = status["type"]
    date = optional(status, "date")
    if date is not None:
        step["date"] = _iso(_time(date))
    step.update(_facts(status))
    if "code" in status:
        step["code"] = status["code"]
    return step


def _facts(status: Mapping[str, str]) -> dict[str, JsonValue]:
    """``time`` (call/fax duration, s), ``amd``, ``size`` (bytes), ``page`` and ``info``."""
    facts: dict[str, JsonValue] = {}
    for name, key in (("time", "duration"), ("size", "size"), ("page", "pages")):
        value = optional(status, name)
        if value is not None:
            number = count(value)
            facts[key] = value if number is None else number
    for name in ("amd", "info"):
        if name in status:
            facts[name] = status[name]
    return facts


def _vxml(vxml: Mapping[str, str]) -> dict[str, JsonValue]:
    """``vxml_info``: voicemail flag, call start/end (UTC), duration, outcome and route taken."""
    out: dict[str, JsonValue] = {}
    voicemail = vxml.get("voicemail", "").strip().lower()
    if voicemail in ("true", "false"):
        out["voicemail"] = voicemail == "true"
    start, end = optional(vxml, "start"), optional(vxml, "end")
    if start is not None:
        out["start"] = _iso(_from_epoch_ms(start))
    if end is not None:
        out["end"] = _iso(_from_epoch_ms(end))
    if start is not None and end is not None:
        out["duration_ms"] = int(end) - int(start)
    for name in ("termination", "result"):
        if name in vxml:
            out[name] = vxml[name]
    route = optional(vxml, "route")
    if route is not None:
        out["route"] = [_route_step(step) for step in route.split("|") if step.strip()]
    return out


def _route_step(step: str) -> dict[str, JsonValue]:
    """``Menu 1(10590):1``: the scenario node, its id and the way out taken."""
    match = _ROUTE_STEP.fullmatch(step.strip())
    if match is None:
        return {"node": step.strip()}
    return {"node": match["node"], "node_id": match["node_id"], "choice": match["choice"]}


# -- times ------------------------------------------------------------------------------------


def _time(value: str) -> datetime:
    """A DMC date: local (Paris), with a zone abbreviation, ISO-8601, or epoch milliseconds."""
    text = value.strip()
    if _EPOCH_MS.fullmatch(text):
        return _from_epoch_ms(text)
    stamp, _, zone_name = text.rpartition(" ")
    zone = _ZONES.get(zone_name.upper())
    if stamp and zone is not None:
        return local_time(stamp, _LOCAL_FORMATS, zone)
    if "T" in text:
        return iso_time(text, PARIS)
    return local_time(text, _LOCAL_FORMATS, PARIS)


def _from_epoch_ms(value: str) -> datetime:
    if not _EPOCH_MS.fullmatch(value.strip()):
        raise PayloadError(f"unreadable timestamp {value!r}", reason="bad_timestamp")
    try:
        return _EPOCH + timedelta(milliseconds=int(value))
    except OverflowError as exc:
        raise PayloadError(f"timestamp out of range {value!r}", reason="bad_timestamp") from exc


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")
