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
  Its id is made of :func:`reply_identity` (broadcast, contact, text), the fields
  ``getResponsesSMS`` gives too (``parsers.pull.dmc``): a reply both pushed and polled is one
  event.
- Dates: ``2014-07-11 09:52:12`` (French local time), ``2016-11-08 13:16:56 CET`` (CET, CEST, UTC
  or GMT), ISO-8601 (``2019-03-28T09:42:47Z``); ``vxml_info`` start/end are epoch milliseconds.

Acknowledgement contract: not specified by the seed beyond the push itself; HTTP 200 (body ``OK``)
once the events are safe, 400 for a document we cannot read (DTDs and entities are refused),
503 when the hub cannot keep the events, so that DMC tries again.

This module's job is a report's media as events (states, codes, errors, addresses); reading the
two dialects is ``parsers.dmc_dialects``, the ``details`` ``parsers.dmc_details``, the dates
``parsers.dmc_times``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import cache

import orjson

from core.errors import PayloadError
from core.models import (
    Code,
    Event,
    EventData,
    Failure,
    Kind,
    Provider,
    RawRequest,
    State,
)
from core.vocabulary import JsonValue
from parsers.base import Callback, bad_request, ok, unavailable
from parsers.dmc_details import details_of
from parsers.dmc_dialects import Medium, json_report
from parsers.dmc_times import ReportTimes
from parsers.dmc_xml import xml_report
from parsers.phones import to_e164
from parsers.tables import FAILURES, UNKNOWN, TableEntry, code_of, load_tables
from parsers.text import optional, without_bom

PROVIDER = Provider.DMC
CALLBACKS: Sequence[Callback] = (
    Callback("cra", ("POST",), "CRA push (section 2.9): status_report in XML or JSON"),
)

_PHONE_MEDIA = frozenset({"sms", "mms", "fax", "call"})
_CODE_TABLES: Mapping[str, str] = {
    "sms": "cra_sms",
    "mms": "cra_mms",
    "call": "cra_vocal",
    "fax": "cra_fax",
    "mail": "cra_email",
    "notif": "cra_notif",
}
_DETAIL_CODE = re.compile(r"(?P<name>[A-Z0-9_]+)\{(?P<detail>.*)\}", re.DOTALL)


def parse(request: RawRequest) -> list[Event]:
    body = without_bom(request.body).lstrip()
    report = json_report(body) if body.startswith(b"{") else xml_report(request.body)
    times = ReportTimes()
    return [_event(report.username, medium, request, times) for medium in report.media]


# The acknowledgement contract: 200 once safe, 400 for input we cannot read, 503 to be retried.
ack, nack, retry = ok, bad_request, unavailable


# -- events -----------------------------------------------------------------------------------


def _event(username: str | None, medium: Medium, request: RawRequest, times: ReportTimes) -> Event:
    fields = medium.fields
    status = optional(fields, "status") or _last_type(medium.history)
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
    details = details_of(username, medium, current, times, inbound=inbound)
    error = _error(code, code_entry, state, details)
    address = _address(medium.tag, fields.get("to"))
    call_id = optional(fields, "call_id")
    text = current.get("info", "") if inbound else None
    data = EventData(
        provider=PROVIDER,
        channel=medium.channel,
        kind=kind,
        state=state,
        final=known.final,
        failure=_failure(state, entry, code_entry),
        message_id=None if inbound else call_id,
        reference=optional(fields, "ref_externe"),
        related_message_id=call_id if inbound else None,
        recipient=None if inbound else address,
        sender=address if inbound else None,
        status=code_of(status, status_entry),
        error=error,
        text=text,
        details=details,
        raw=medium.raw,
        received_at=request.received_at,
    )
    identity = None
    if text is not None:
        identity = reply_identity(
            optional(fields, "broadcast_id"), optional(fields, "contact_id"), text
        )
    return Event.of(data, _when(fields, current, times), identity=identity)


def reply_identity(broadcast_id: str | None, contact_id: str | None, text: str) -> str | None:
    """What identifies a contact's SMS reply whether DMC pushes it (``ANSWERED``, its ``info``)
    or lists it (getResponsesSMS: ``broadcastId``, ``contactId``, ``callResponse``): the
    broadcast, the contact and the text, its runs of white space as one space (an XML attribute
    holds a line break as a space, an element as it is). The dates differ (the push dates the
    reply, the list the call), ``call_id`` is the push's only. ``None`` without both ids."""
    if not broadcast_id or not contact_id:
        return None
    return orjson.dumps(
        ["reply", broadcast_id.strip(), contact_id.strip(), " ".join(text.split())]
    ).decode()


def _last_type(history: Sequence[Mapping[str, str]]) -> str | None:
    return optional(history[-1], "type") if history else None


def _current(history: Sequence[Mapping[str, str]], status: str) -> Mapping[str, str]:
    """The history entry of the current status (the last of that type), else the last one."""
    for entry in reversed(history):
        if entry.get("type", "").strip() == status:
            return entry
    return history[-1] if history else {}


def _status_entry(tag: str, status: str) -> TableEntry | None:
    return _status_table(tag).get(status)


@cache
def _status_table(tag: str) -> Mapping[str, TableEntry]:
    """The statuses of a ``tag``: the table of all media, with the medium's own over it."""
    tables = load_tables(PROVIDER)
    return {**tables["status"], **tables.get(f"status_{tag}", {})}


def _code_entry(tag: str, code: str | None) -> TableEntry | None:
    """The annex 5.4 entry of ``code``: the medium's table first, then all media, then the rest."""
    if code is None:
        return None
    match = _DETAIL_CODE.fullmatch(code) if "{" in code else None
    key = f"{match['name']}{{DETAIL}}" if match else code
    return next((table[key] for table in _code_tables(tag) if key in table), None)


@cache
def _code_tables(tag: str) -> tuple[Mapping[str, TableEntry], ...]:
    """The code tables to look a ``tag``'s code up in, in order: its own, all media's, the rest."""
    tables = load_tables(PROVIDER)
    first = (_CODE_TABLES[tag], "cra_all")
    names = [*first, *(n for n in tables if n.startswith("cra_") and n not in first)]
    return tuple(tables[n] for n in names)


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


def _when(
    fields: Mapping[str, str], current: Mapping[str, str], times: ReportTimes
) -> datetime | None:
    value = optional(fields, "date") or optional(current, "date")
    return None if value is None else times[value]
