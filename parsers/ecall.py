"""eCall (F24 Schweiz, seed 003, sections 3, 3.7, 3.8): delivery notifications and SMS answers.

Callbacks: eCall calls a URL of ours by GET, or by POST with an
``application/x-www-form-urlencoded`` body, and names what it sends in ``Function``:

- ``Function=Notification`` (3.8; URL segment ``notification``, the ``NotificationAddress`` of a
  send order): ``ResultCode`` (table 3.8.1: 0 delivered, 1 buffered, 2 not delivered, 3 error,
  4 handed to the message centre), ``ResultText``, ``Number`` (the recipient, ``0041…``),
  ``TimeStamp`` and optionally ``JobID`` (our own id of the message, kept as ``reference``).
- ``Function=Answer`` (3.7; URL segment ``answer``, the ``Answer`` address): ``AddressTo`` (our
  number), ``AddressFrom`` (the person who answered), ``Message``, ``TimeStamp``, optional
  ``JobID``. The seed's parameter list spells ``AdressTo``/``AdressFrom``: both are accepted.

Each URL segment accepts both functions: ``Function`` decides, the segment only names the use.

Reading rules:
- Parameter names are case-insensitive (3); ``raw`` keeps them as received (and the JobID quirk
  below its case). Of names that differ only by case, the first one wins.
- Values are percent-encoded UTF-8 (bytes that are not UTF-8: Windows-1252), except the Answer
  ``Message``, which is Windows-1252 (3.7). It is read as Windows-1252 only, never "UTF-8 first":
  every byte keeps its own character, so the text can always be turned back into the bytes eCall
  sent (the five bytes Windows-1252 leaves undefined make the whole value read as Latin-1).
- Query and form body may both hold fields: the body wins (the query is our own URL's).
- ``TimeStamp`` is ``dd.mm.yyyy hh:mm:ss`` Swiss local time, often over-encoded
  (``11%2E12%2E2015+10%3A37%3A00``). A value that cannot be read (the 3.8 sample has
  ``1Z.07.2014``) does not cost the event: its time is then the reception time and
  ``details.timestamp_invalid`` is true.
- The seed's mandatory fields must be there (``Function``, ``ResultCode``, ``Number``,
  ``TimeStamp``; ``AddressTo``, ``AddressFrom``, ``Message``, which may be empty); ``ResultText``
  may be missing.
- The 3.8 sample writes ``JobID:FB551638-...`` (no ``=``): such a field gives the JobID.
- ResultCode 3 may name an error code at the start of its ResultText ("Error Code / Error
  Message"); it is then looked up in the SMS status table (3.5.3.1), then the ResultCodes (4.2).

Acknowledgement contract (3.7, 3.8): HTTP 200 with a non-empty body, whose content does not
matter; anything else is retried. Accepted callbacks get ``200 OK``. Refused ones (kept in the
hub's quarantine) get ``200 rejected: <reason>`` too: eCall would otherwise send the same
unreadable request again and again. Only "our fault" answers 503, to be retried.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from core.errors import HubError, PayloadError
from core.models import (
    Channel,
    Code,
    Event,
    EventData,
    Failure,
    Kind,
    Provider,
    RawRequest,
    Reply,
    State,
)
from core.vocabulary import JsonValue
from parsers.base import OK_REPLY, Callback, unavailable
from parsers.phones import to_e164
from parsers.tables import UNKNOWN, TableEntry, code_of, load_tables
from parsers.text import decode_query, optional, required
from parsers.times import ZURICH, local_time

PROVIDER = Provider.ECALL
CALLBACKS: Sequence[Callback] = (
    Callback(
        "notification", ("GET", "POST"), "delivery notifications, Function=Notification (3.8)"
    ),
    Callback("answer", ("GET", "POST"), "SMS answers of recipients, Function=Answer (3.7)"),
)

_CHARSETS = ("utf-8", "cp1252")
_MESSAGE_CHARSETS = ("cp1252", "iso-8859-1")
_FORM_TYPES = ("", "application/x-www-form-urlencoded")
_TIME_FORMATS = ("%d.%m.%Y %H:%M:%S",)
_JOB_ID_QUIRK = re.compile(r"(?i)jobid:(.*)")
_LEADING_CODE = re.compile(r"\s*(-?\d+)\b")
_ERROR_TABLES = ("sms", "result")


@dataclass(frozen=True, slots=True)
class _Fields:
    raw: dict[str, str]
    """Every field, names as received."""
    named: dict[str, str]
    """The same fields by lower-case name."""


def parse(request: RawRequest) -> list[Event]:
    sources = _sources(request)
    decoded = [decode_query(source, _CHARSETS) for source in sources]
    fields = _fields(sources, decoded, answer=False)
    function = _function(fields)
    if function == "notification":
        return [_notification(fields, request)]
    if function == "answer":
        if not _ascii(fields):  # a Message may read otherwise in Windows-1252
            fields = _fields(sources, decoded, answer=True)
        return [_answer(fields, request)]
    raise PayloadError(f"unknown Function {function!r}", reason="unknown_function")


def ack(events: list[Event]) -> Reply:
    return OK_REPLY


def nack(error: HubError) -> Reply:
    return Reply(status=200, body=f"rejected: {error.reason}".encode())


def retry(error: HubError) -> Reply:
    return unavailable(error)


# -- fields -----------------------------------------------------------------------------------


def _fields(sources: list[bytes], decoded: list[dict[str, str]], *, answer: bool) -> _Fields:
    """The fields of ``sources`` (``decoded``: each one read in :data:`_CHARSETS`)."""
    raw: dict[str, str] = {}
    named: dict[str, str] = {}
    for source, fields in zip(sources, decoded, strict=True):  # later sources win
        if answer:  # the Answer's Message is Windows-1252
            cp1252 = decode_query(message_parts(source), _MESSAGE_CHARSETS)
            fields = fields | {k: v for k, v in cp1252.items() if k.lower() == "message"}
        raw |= fields
        named |= _by_lower_name(fields)
    return _Fields(raw, named)


def _ascii(fields: _Fields) -> bool:
    """Every value is ASCII text, the Message among them (``named`` holds values of ``raw``):
    read in Windows-1252, the Answer's Message is the same text (bytes above 127 read as other
    characters, or not at all, in UTF-8 and in Windows-1252)."""
    return "".join(fields.raw.values()).isascii()


def message_parts(source: bytes) -> bytes:
    """The ``name=value`` parts of ``source`` whose name may read ``Message`` in some case once
    decoded, in their order: the parts to read again in Windows-1252, where reading the whole
    query again would decode every other value too. Such a name is ASCII ``message`` in any
    case once stripped (no other character lowers to these letters), as given or escaped."""
    return b"&".join(
        part
        for part in source.split(b"&")
        if (name := part.partition(b"=")[0]).strip().lower() == b"message" or b"%" in name
    )


def _sources(request: RawRequest) -> list[bytes]:
    """The query string, then the form body if there is one."""
    if not request.body:
        return [request.query]
    media_type = request.content_type.partition(";")[0].strip().lower()
    if media_type not in _FORM_TYPES:
        raise PayloadError(f"body of type {media_type!r}", reason="unsupported_content_type")
    return [request.query, request.body]


def _by_lower_name(fields: Mapping[str, str]) -> dict[str, str]:
    """Fields by lower-case name; of names that differ only by case, the first wins."""
    named: dict[str, str] = {}
    for name, value in fields.items():
        named.setdefault(name.lower(), value)
    return named


def _function(fields: _Fields) -> str:
    return required(fields.named, "function").strip().lower()


def _present(fields: _Fields, *names: str) -> str:
    """The first of ``names`` (spellings of one field) that is not blank."""
    for name in names:
        value = optional(fields.named, name)
        if value is not None:
            return value
    raise PayloadError(f"missing field {names[0]!r}", reason="missing_field")


def _job_id(fields: _Fields) -> str | None:
    """``JobID``, or the id of a ``JobID:<id>`` field with no value (the 3.8 sample)."""
    job_id = optional(fields.named, "jobid")
    if job_id is not None:
        return job_id
    for name, value in fields.raw.items():
        if ":" not in name:  # as the pattern requires; a test is cheaper than a match
            continue
        quirk = _JOB_ID_QUIRK.fullmatch(name.strip())
        if quirk and not value.strip() and quirk.group(1).strip():
            return quirk.group(1).strip()
    return None


def _timestamp(fields: _Fields) -> datetime | None:
    """``TimeStamp`` as an aware time; ``None`` when the (present) value cannot be read."""
    value = required(fields.named, "timestamp")
    try:
        return local_time(value, _TIME_FORMATS, ZURICH)
    except PayloadError:
        return None


def _timestamp_details(when: datetime | None) -> dict[str, JsonValue]:
    return {"timestamp_invalid": True} if when is None else {}


# -- notification -----------------------------------------------------------------------------


def _notification(fields: _Fields, request: RawRequest) -> Event:
    code = _present(fields, "resultcode")
    result_text = optional(fields.named, "resulttext")
    when = _timestamp(fields)
    entry = load_tables(PROVIDER)["notification"].get(code)
    state = (entry or UNKNOWN).state
    error, detail = _error(result_text) if state is State.FAILED else (None, None)
    details: dict[str, JsonValue] = {"result_text": result_text} if result_text else {}
    data = EventData(
        provider=PROVIDER,
        channel=Channel.SMS,
        kind=Kind.DELIVERY,
        state=state,
        final=(entry or UNKNOWN).final,
        failure=_failure(entry, detail),
        reference=_job_id(fields),
        recipient=to_e164(_present(fields, "number"), "CH"),
        status=code_of(code, entry),
        error=error,
        details=details | _timestamp_details(when),
        raw=dict(fields.raw),
        received_at=request.received_at,
    )
    return Event.of(data, when)


def _error(result_text: str | None) -> tuple[Code | None, TableEntry | None]:
    """The error code a failure's ResultText starts with, if any, and its table entry."""
    found = _LEADING_CODE.match(result_text or "")
    if found is None:
        return None, None
    code = found.group(1)
    tables = load_tables(PROVIDER)
    detail = next((tables[t][code] for t in _ERROR_TABLES if code in tables[t]), None)
    return code_of(code, detail), detail


def _failure(entry: TableEntry | None, detail: TableEntry | None) -> Failure | None:
    """The failure class of the error named in ResultText when known, else the ResultCode's."""
    if detail is not None and detail.state is State.FAILED and detail.failure is not None:
        return detail.failure
    return (entry or UNKNOWN).failure


# -- answer -----------------------------------------------------------------------------------


def _answer(fields: _Fields, request: RawRequest) -> Event:
    when = _timestamp(fields)
    data = EventData(
        provider=PROVIDER,
        channel=Channel.SMS,
        kind=Kind.INBOUND,
        state=State.RECEIVED,
        final=True,
        reference=_job_id(fields),
        recipient=to_e164(_present(fields, "addressto", "adressto"), "CH"),
        sender=to_e164(_present(fields, "addressfrom", "adressfrom"), "CH"),
        text=required(fields.named, "message"),
        details=_timestamp_details(when),
        raw=dict(fields.raw),
        received_at=request.received_at,
    )
    return Event.of(data, when)
