"""sMsmode (seed 004, items 12 and 13, annex of statuses): HTTP API callbacks, API v2 webhooks.

Acknowledgement contract: the seed states no answer format (an HTTP 200 is success); we answer
``200 OK`` once the events are safe, ``400`` for a callback we cannot understand (quarantined) and
``503`` when we cannot make the events safe, so that sMsmode tries again. The API v2 webhooks
take any 2xx and are retried up to 6 times (+30 s, +2 min, +10 min, +1 h, +5 h, +24 h).

Callbacks (URL segment, method):

- ``delivery`` (GET): the delivery report sent to the ``notification_url`` given with each SMS
  (item 12): ``numero date_reception statut smsID refClient mcc_mnc``. ``numero`` is the recipient
  in bare international form (``336…``); ``date_reception`` is ``yyyy-MM-dd HH:mm:ss`` French local
  time; ``statut`` is read in the annex's list (``tables/smsmode.toml``, table ``statut``);
  ``smsID`` is the id returned by the send request; ``refClient`` our own tag; ``mcc_mnc`` the
  operator (MCC + MNC).
- ``reply`` (GET): an SMS answering one of ours (sent with ``classe_msg=4``), to the URL set in the
  account (item 13): ``numero message emetteur date_reception smsID refClient responseID``.
  ``numero`` is sMsmode's short number that took the reply (the recipient, kept as given when it is
  not a phone number), ``emetteur`` the person who replied (the sender), ``date_reception``
  ``ddMMyyyy-HHmmss`` French local time, ``responseID`` the reply's own id and ``smsID`` the id of
  our message it answers. The event's id is made of ``responseID`` (``Event.of``'s
  ``identity``), as the reply read from ``responseList.do`` (``parsers.pull.smsmode``): the same
  reply pushed and polled is the same event.
- ``webhook`` (POST, JSON): the REST API v2 Message resource. ``direction`` ``MT`` is a status
  report of a message we sent (``status.value`` in table ``v2_status``, ``status.detail`` in table
  ``v2_detail``), ``MO`` an inbound message (``originMessageId`` is the message it answers).
  ``messageId`` is the message's id: sMsmode asks receivers to deduplicate on it. Dates are
  ISO-8601 (a date without offset is read as French local time).

The two GET callbacks are told apart by their fields (a reply has ``emetteur``/``responseID``,
a report ``statut``), whichever of the two URLs receives them. Each time field is read in both
HTTP API formats, whichever callback carries it. Query values are
percent-encoded ISO-8859-15 (the HTTP API's charset) or UTF-8. Unknown ``statut`` codes and
unknown ``status`` values give an event with state ``unknown``: they are acknowledged, never
rejected.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime

import orjson

from core.errors import PayloadError
from core.models import (
    Channel,
    Code,
    Event,
    EventData,
    Kind,
    Provider,
    RawRequest,
    State,
)
from core.vocabulary import JsonValue
from parsers.base import Callback, bad_request, ok, unavailable
from parsers.phones import to_e164
from parsers.tables import FAILURES, UNKNOWN, TableEntry, code_of, load_tables
from parsers.text import decode_query, decode_text, optional, required, without_bom
from parsers.times import PARIS, iso_time, local_time

PROVIDER = Provider.SMSMODE
CALLBACKS: Sequence[Callback] = (
    Callback("delivery", ("GET",), "delivery reports sent to notification_url (item 12)"),
    Callback("reply", ("GET",), "SMS replies, to the account's reply notification URL (item 13)"),
    Callback("webhook", ("POST",), "REST API v2 JSON webhooks: MT status reports, MO messages"),
)

TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%d%m%Y-%H%M%S", "%Y-%m-%d %H:%M", "%d%m%Y-%H:%M")
"""Reports' ``yyyy-MM-dd HH:mm:ss``, replies' ``ddMMyyyy-HHmmss``, and both to the minute."""

_MCC_MNC = re.compile(r"[0-9]{5,6}")
_CHANNELS = {"SMS": Channel.SMS, "MMS": Channel.MMS, "VOICE": Channel.VOICE}

JsonObject = dict[str, JsonValue]


def parse(request: RawRequest) -> list[Event]:
    if request.callback == "webhook":
        return [_webhook(_json_object(request.body), request)]
    fields = decode_query(request.query)
    if "emetteur" in fields or "responseID" in fields:
        return [_reply(fields, request)]
    if "statut" in fields:
        return [_delivery(fields, request)]
    raise PayloadError("neither a delivery report nor a reply", reason="unknown_callback")


# The acknowledgement contract: 200 once safe, 400 for input we cannot read, 503 to be retried.
ack, nack, retry = ok, bad_request, unavailable


# -- HTTP API: GET callbacks --------------------------------------------------------------------


def _delivery(fields: dict[str, str], request: RawRequest) -> Event:
    statut = required(fields, "statut").strip()
    when = _local(required(fields, "date_reception"))
    entry = load_tables(PROVIDER)["statut"].get(statut)
    known = entry or UNKNOWN
    operator = optional(fields, "mcc_mnc")
    data = EventData(
        provider=PROVIDER,
        channel=known.channel or Channel.SMS,
        kind=known.kind or Kind.DELIVERY,
        state=known.state,
        final=known.final,
        failure=known.failure,
        message_id=optional(fields, "smsID"),
        reference=optional(fields, "refClient"),
        recipient=to_e164(fields.get("numero")),
        status=code_of(statut, entry),
        operator=operator,
        details=_network(operator),
        raw=dict(fields),
        received_at=request.received_at,
    )
    return Event.of(data, when)


def _reply(fields: dict[str, str], request: RawRequest) -> Event:
    when = _local(required(fields, "date_reception"))
    response_id = optional(fields, "responseID")
    data = EventData(
        provider=PROVIDER,
        channel=Channel.SMS,
        kind=Kind.INBOUND,
        state=State.RECEIVED,
        final=True,
        message_id=response_id,
        reference=optional(fields, "refClient"),
        related_message_id=optional(fields, "smsID"),
        recipient=to_e164(fields.get("numero")),
        sender=to_e164(required(fields, "emetteur")),
        text=fields.get("message", ""),
        raw=dict(fields),
        received_at=request.received_at,
    )
    # the reply's own id, as sMsmode's list of replies gives it (parsers.pull.smsmode): a reply
    # both pushed and polled is one event
    return Event.of(data, when, identity=response_id)


def _network(mcc_mnc: str | None) -> dict[str, JsonValue]:
    """``20801`` → MCC ``208`` (France), MNC ``01`` (Orange)."""
    if mcc_mnc is None or not _MCC_MNC.fullmatch(mcc_mnc):
        return {}
    return {"mcc": mcc_mnc[:3], "mnc": mcc_mnc[3:]}


# -- REST API v2: JSON webhooks ------------------------------------------------------------------


def _webhook(doc: JsonObject, request: RawRequest) -> Event:
    direction = (_member_text(doc, "direction") or "").upper()
    if direction == "MT":
        return _status_report(doc, request)
    if direction == "MO":
        return _inbound(doc, request)
    raise PayloadError("direction is neither MT nor MO", reason="unknown_callback")


def _status_report(doc: JsonObject, request: RawRequest) -> Event:
    status = _member(doc, "status")
    value, detail = _member_text(status, "value"), _member_text(status, "detail")
    tables = load_tables(PROVIDER)
    value_entry = tables["v2_status"].get(value.upper()) if value else None
    detail_entry = tables["v2_detail"].get(detail.upper()) if detail else None
    known = _refine(value_entry, detail_entry) or UNKNOWN
    channel, details = _channel(doc)
    if detail:
        details["status_detail"] = detail
    recipient = _member(doc, "recipient")
    data = EventData(
        provider=PROVIDER,
        channel=known.channel or channel,
        kind=known.kind or Kind.DELIVERY,
        state=known.state,
        final=known.final,
        failure=known.failure,
        message_id=_required_text(doc, "messageId"),
        reference=_member_text(doc, "refClient") or _member_text(recipient, "refClient"),
        recipient=to_e164(_member_text(recipient, "to")),
        sender=to_e164(_member_text(doc, "from")),
        status=_code(value, value_entry),
        error=_code(detail, detail_entry) if known.state in FAILURES else None,
        details=details,
        raw=doc,
        received_at=request.received_at,
    )
    when = _first_time(status.get("deliveryDate"), doc.get("sentDate"), doc.get("acceptedAt"))
    return Event.of(data, when)


def _inbound(doc: JsonObject, request: RawRequest) -> Event:
    recipient = _member(doc, "recipient")
    channel, details = _channel(doc)
    data = EventData(
        provider=PROVIDER,
        channel=channel,
        kind=Kind.INBOUND,
        state=State.RECEIVED,
        final=True,
        message_id=_required_text(doc, "messageId"),
        reference=_member_text(doc, "refClient") or _member_text(recipient, "refClient"),
        related_message_id=_member_text(doc, "originMessageId"),
        recipient=to_e164(_member_text(recipient, "to")),
        sender=to_e164(_member_text(doc, "from")),
        text=_member_text(_member(doc, "body"), "text") or "",
        details=details,
        raw=doc,
        received_at=request.received_at,
    )
    return Event.of(data, _first_time(doc.get("acceptedAt"), doc.get("sentDate")))


def _refine(value: TableEntry | None, detail: TableEntry | None) -> TableEntry | None:
    """The entry that says what happened: a failure's detail is more precise than its value."""
    if value and detail and value.state in FAILURES and detail.state in FAILURES:
        return detail
    return value


def _code(code: str | None, entry: TableEntry | None) -> Code | None:
    if code is None:
        return None
    return code_of(code, entry)


def _channel(doc: JsonObject) -> tuple[Channel, dict[str, JsonValue]]:
    """The channel of ``channel.type``; a type with no channel of ours (RCS...) goes to details."""
    kind = _member_text(_member(doc, "channel"), "type")
    channel = _CHANNELS.get((kind or "SMS").upper())
    if channel is None:
        return Channel.SMS, {"channel_type": kind}
    return channel, {}


def _json_object(body: bytes) -> JsonObject:
    try:
        doc = orjson.loads(decode_text(without_bom(body)))
    except orjson.JSONDecodeError as exc:
        raise PayloadError("the body is not JSON", reason="bad_json") from exc
    if not isinstance(doc, dict):
        raise PayloadError("the JSON body is not an object", reason="bad_json")
    return doc


def _member(doc: Mapping[str, JsonValue], name: str) -> JsonObject:
    value = doc.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PayloadError(f"{name!r} is not an object", reason="bad_field")
    return value


def _member_text(doc: Mapping[str, JsonValue], name: str) -> str | None:
    """A scalar member as text (a boolean is refused: the fields read are strings or numbers);
    ``None`` when absent, null or empty."""
    value = doc.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise PayloadError(f"{name!r} is not a string", reason="bad_field")
    return str(value)


def _required_text(doc: Mapping[str, JsonValue], name: str) -> str:
    value = _member_text(doc, name)
    if value is None:
        raise PayloadError(f"missing field {name!r}", reason="missing_field")
    return value


# -- times ---------------------------------------------------------------------------------------


def _local(value: str) -> datetime:
    """An HTTP API time: French local time in one of :data:`TIME_FORMATS`."""
    return local_time(value, TIME_FORMATS, PARIS)


def _first_time(*values: JsonValue) -> datetime | None:
    """The first ISO-8601 time given (``None``: the reception time stands in)."""
    for value in values:
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise PayloadError(f"unreadable time {value!r}", reason="bad_timestamp")
        return iso_time(value, PARIS)
    return None
