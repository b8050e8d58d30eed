"""DMC (SFR Business, seed 001, 2.4.7): how to ask ``getResponsesSMS`` for the STOPs and SMS
replies of a period, and what its SOAP answers mean.

The request (SOAP 1.1, POST ``/SupervisionWS/getResponsesSMS`` under the API's address, as 1.1.5.1
writes URLs: ``…/DmcWS/<version>/<nom ws>/<nom méthode>``): the credentials in the header's
``authenticate`` (``servicId`` as the method's sample spells it, ``servicePassword``,
``spaceId``, optional ``lang``), in the body ``stopOnly`` (only the STOPs, or every reply),
``beginDate`` and ``endDate`` (``2013-09-01T00:00:00``: French local time, as the sample
writes them). Its body holds the password: :class:`Call` says so, nothing logs it. The whole
SupervisionWS family is limited to one call per minute (2.4): a second call within the minute
gets an exception.

The answer: ``getResponsesSMSResponse/return`` holding one ``list`` per CRA with an SMS answer
(``broadcastId``, ``callAdress``, ``callDate``, ``callResponse``, ``contactId``, ``spaceId``,
and contact fields such as ``firstName``/``lastName``) and ``total``. Each one is an item whose
event is the push's ``ANSWERED`` one (``parsers.dmc``): kind ``inbound``, state ``received``,
the sender in E.164, the text, the time ``callDate`` (unreadable: the reception time and
``details.timestamp_invalid``), and the same event id (``parsers.dmc.reply_identity``: broadcast,
contact, text), so that a reply both pushed and polled is one event; ``details`` hold the ids,
``via`` = ``poll`` and ``stop`` = true when DMC listed it as a STOP (asked with
``stopOnly=true``). The item's key is that event's id (no text in it); its time ``callDate``.

Which answers say what (1.1.5.5: a ``S:Fault`` whose ``DmcException`` names a code):
``no_service_found``/``no_space_found`` refuse the credentials; ``invalid_parameter`` and
``parametres_inconsistants`` the request (a period DMC will not give, among others);
``option_not_present`` too (the replies option is not subscribed); the per-minute limit of 2.4,
whose code the document does not give, is recognized by its words (:data:`_RATE_LIMIT`): wait
60 s; any other fault: retry later.

The reader learns ``stopOnly`` from ``RawRequest.query``, which for this SOAP call is
:func:`request_query` (the body's parameters but the credentials).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime
from urllib.parse import parse_qs, urlencode
from xml.etree.ElementTree import Element
from xml.sax.saxutils import escape

from core.errors import PayloadError
from core.models import Channel, Event, EventData, Kind, Provider, RawRequest, State
from core.vocabulary import JsonValue, aware
from parsers.dmc import reply_identity
from parsers.dmc_times import read_time
from parsers.phones import to_e164
from parsers.pull.base import Call, Item, Outcome, Page, http_status
from parsers.times import PARIS
from parsers.xml import parse_xml

PROVIDER = Provider.DMC
PATH = "/SupervisionWS/getResponsesSMS"
CONTENT_TYPE = "text/xml; charset=utf-8"
RATE_LIMIT_SECONDS = 60.0
"""2.4: "limité à un appel par minute"."""

FAULTS: Mapping[str, Outcome] = {
    "invalid_wave_format": Outcome.REQUEST_REFUSED,
    "no_service_found": Outcome.CREDENTIALS_REFUSED,
    "no_space_found": Outcome.CREDENTIALS_REFUSED,
    "can_not_delete_has_child": Outcome.REQUEST_REFUSED,
    "option_quota_overflowed": Outcome.RETRY_LATER,
    "option_not_present": Outcome.REQUEST_REFUSED,
    "parametres_inconsistants": Outcome.REQUEST_REFUSED,
    "invalid_parameter": Outcome.REQUEST_REFUSED,
    "corruption_base": Outcome.RETRY_LATER,
}
"""Every error code of 1.1.5.5, and what it means to a source that polls."""
_RATE_LIMIT = re.compile(r"(?i)minute|too[ _]?many|frequen|rate[ _]?limit|trop d.appels")
"""The words of a fault that says "once a minute" (2.4 names no code for it)."""
MAX_DEPTH = 8
"""How deep ``raw`` follows the elements of a ``list`` (the documented ones are flat)."""
_ENVELOPE_NS = "http://schemas.xmlsoap.org/soap/envelope/"
_SERVICE_NS = "http://servicedata.ws.dmc.sfrbt/"


# -- the request ------------------------------------------------------------------------------


def get_responses_sms_call(
    service_id: str,
    service_password: str,
    space_id: str,
    begin: datetime,
    end: datetime,
    *,
    stop_only: bool = False,
    lang: str = "",
) -> Call:
    """2.4.7's request for the replies (``stop_only``: the STOPs only) from ``begin`` to
    ``end`` (aware times, sent as French local time)."""
    lang_element = f"\n      <lang>{escape(lang)}</lang>" if lang else ""
    body = f"""<soapenv:Envelope xmlns:soapenv="{_ENVELOPE_NS}"
xmlns:ser="{_SERVICE_NS}">
  <soapenv:Header>
    <ser:authenticate>
      <servicId>{escape(service_id)}</servicId>
      <servicePassword>{escape(service_password)}</servicePassword>
      <spaceId>{escape(space_id)}</spaceId>{lang_element}
    </ser:authenticate>
  </soapenv:Header>
  <soapenv:Body>
    <ser:getResponsesSMS>
      <stopOnly>{"true" if stop_only else "false"}</stopOnly>
      <beginDate>{_local(begin)}</beginDate>
      <endDate>{_local(end)}</endDate>
    </ser:getResponsesSMS>
  </soapenv:Body>
</soapenv:Envelope>
"""
    return Call(
        "POST",
        PATH,
        body=body.encode(),
        content_type=CONTENT_TYPE,
        secrets=frozenset({"servicePassword"}),
        headers=(("SOAPAction", '""'),),
    )


def request_query(begin: datetime, end: datetime, *, stop_only: bool = False) -> bytes:
    """The request's parameters but the credentials, as the reader takes them in
    ``RawRequest.query``."""
    fields = {"stopOnly": "true" if stop_only else "false", "beginDate": _local(begin)}
    return urlencode({**fields, "endDate": _local(end)}).encode()


def _local(when: datetime) -> str:
    return aware(when).astimezone(PARIS).strftime("%Y-%m-%dT%H:%M:%S")


# -- the answer -------------------------------------------------------------------------------


def read_status(status: int) -> Page | None:
    """A SOAP fault comes with HTTP 500: its body says what it is. Other statuses as usual."""
    return None if status == 500 else http_status(status)


def read_get_responses_sms(response: RawRequest) -> Page:
    body = _soap_body(parse_xml(response.body))
    fault = _child(body, "Fault")
    if fault is not None:
        return _fault(fault)
    answer = _child(body, "getResponsesSMSResponse")
    if answer is None:
        raise PayloadError("neither a fault nor getResponsesSMSResponse", reason="unknown_document")
    stop = _stop_only(response.query)
    found = _child(answer, "return")
    lists = [] if found is None else [e for e in found if _name(e) == "list"]
    items = [_item(element, stop, response) for element in lists]
    return Page(Outcome.ITEMS, items=items) if items else Page(Outcome.NOTHING_NEW)


def _fault(fault: Element) -> Page:
    exception = next((e for e in fault.iter() if _name(e) == "DmcException"), None)
    texts = [
        _text(_child(exception, "message")) if exception is not None else "",
        _text(_child(fault, "faultstring")),
    ]
    code = next((t.strip() for t in texts if t.strip()), "")
    if code in FAULTS:
        return Page(FAULTS[code], reason=code)
    words = " ".join([*texts, *(_text(e) for e in fault.iter() if _name(e) == "params")])
    if _RATE_LIMIT.search(words):
        return Page(Outcome.RATE_LIMITED, reason="once_a_minute", retry_after=RATE_LIMIT_SECONDS)
    return Page(Outcome.RETRY_LATER, reason="unknown_fault")


def _item(element: Element, stop: bool | None, response: RawRequest) -> Item:
    fields = {_name(child): _text(child) for child in element if len(child) == 0}
    text = fields.get("callResponse")
    if text is None:
        raise PayloadError("a list without callResponse", reason="missing_field")
    details: dict[str, JsonValue] = {"via": "poll"}
    when = _when(fields.get("callDate", ""), details)
    for name, key in (("broadcastId", "broadcast_id"), ("contactId", "contact_id")):
        if fields.get(name, "").strip():
            details[key] = fields[name].strip()
    if fields.get("spaceId", "").strip():
        details["space_id"] = fields["spaceId"].strip()
    if stop:
        details["stop"] = True
    data = EventData(
        provider=PROVIDER,
        channel=Channel.SMS,
        kind=Kind.INBOUND,
        state=State.RECEIVED,
        final=True,
        reference=(fields.get("externalReference") or "").strip() or None,
        sender=to_e164(fields.get("callAdress")),
        text=text,
        details=details,
        raw=_raw(element),
        received_at=response.received_at,
    )
    identity = reply_identity(fields.get("broadcastId"), fields.get("contactId"), text)
    event = Event.of(data, when, identity=identity)
    return Item(event.id, when, (event,))


def _when(date: str, details: dict[str, JsonValue]) -> datetime | None:
    """``callDate`` in UTC; unreadable, it costs the item its time only (it is not part of the
    reply's identity): ``details.timestamp_invalid``."""
    if not date.strip():
        return None
    try:
        return read_time(date)
    except PayloadError:
        details["timestamp_invalid"] = True
        return None


def _stop_only(query: bytes) -> bool | None:
    values = parse_qs(query.decode("utf-8", "replace")).get("stopOnly")
    return None if not values else values[0].strip().lower() == "true"


# -- XML --------------------------------------------------------------------------------------


def _name(element: Element) -> str:
    return element.tag.rpartition("}")[2]


def _child(parent: Element | None, name: str) -> Element | None:
    if parent is None:
        return None
    return next((child for child in parent if _name(child) == name), None)


def _text(element: Element | None) -> str:
    return "" if element is None else element.text or ""


def _soap_body(root: Element) -> Element:
    body = _child(root, "Body") if _name(root) == "Envelope" else None
    if body is None:
        raise PayloadError("not a SOAP envelope with a body", reason="unknown_document")
    return body


def _raw(element: Element, depth: int = 0) -> dict[str, JsonValue]:
    """The fields of one ``list`` as received; a repeated name gives a list."""
    if depth > MAX_DEPTH:
        raise PayloadError("XML nested too deep", reason="invalid_xml")
    raw: dict[str, JsonValue] = {}
    for child in element:
        name = _name(child)
        value: JsonValue = _text(child) if len(child) == 0 else _raw(child, depth + 1)
        if name not in raw:
            raw[name] = value
            continue
        previous = raw[name]
        raw[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
    return raw


READERS: Mapping[str, Callable[[RawRequest], Page]] = {
    "getResponsesSMS": read_get_responses_sms,
}
"""The reader of each method, by the name a source gives in ``RawRequest.callback``."""
