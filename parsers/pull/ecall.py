"""eCall (F24, seed 003, section 3.6 "Mémoire tampon"): how to ask for the SMS in the message
buffer of the rented numbers, and what its answers mean.

Two GET requests, credentials in the query (``UserName``/``Password``: the document writes
``Username`` in 3.6.1's examples and ``UserName`` in 3.4.2's; names are case-insensitive, 3):

- ``/Api/Cache/GetNextMessage?Username=…&Password=…[&MobileNumber=…]``: the oldest message of
  the buffer (of one rented number when ``MobileNumber`` is given), with the id to delete it::

      <IncomingSMS><Result><ResultCode/><ResultText/></Result><MessageID/>
        <SMS><Message/><AddressTo/><AddressFrom/><TimeStamp/></SMS></IncomingSMS>

  ResultCode 11204 ("NoNewMsg"): the buffer is empty, and neither ``MessageID`` nor ``SMS`` is
  there. The message stays in the buffer until it is deleted.
- ``/Api/Cache/DeleteMessage?UserName=…&Password=…&MessageID=…``: takes it out of the buffer
  (not out of the account); ``<DeleteMsg><Result><ResultCode/><ResultText/></Result></DeleteMsg>``.

Both answer HTTP 200 with the XML whatever the result (4.1: "pour les opérations avec la mémoire
tampon, seuls les codes de résultat eCall sont renvoyés"); the result codes are table 4.2's
(:data:`RESULTS`). The statuses of 4.1 (401 unknown credentials, 403 too few points, 500) are
read by :func:`read_status`, in case the buffer operations answer like the send orders.

The message read is the event eCall's ``Answer`` callback (``parsers.ecall``, 3.7) gives for an
SMS: kind ``inbound``, state ``received``, ``AddressTo``/``AddressFrom`` in E.164 (Swiss national
numbers), ``TimeStamp`` Swiss local time (unreadable: the reception time, and
``details.timestamp_invalid``), ``raw`` every field by its element's name, ``details.via`` =
``poll``; and, which the callback does not carry, ``message_id`` the buffer's ``MessageID``
(as sMsmode's replies carry their ``responseID``). Its id is made of that ``MessageID``
(``Event.of(identity=…)``): the same buffered message read twice (a crash before it was
deleted) gives the same event. The callback carries no such id, so a message both forwarded by
``Answer`` and buffered gives two ids.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from xml.etree.ElementTree import Element

from core.errors import PayloadError
from core.models import Channel, Event, EventData, Kind, Provider, RawRequest, State
from core.vocabulary import JsonValue
from parsers.phones import to_e164
from parsers.pull.base import Call, Item, Outcome, Page, http_status
from parsers.times import ZURICH, local_time
from parsers.xml import parse_xml

PROVIDER = Provider.ECALL
GET_NEXT_MESSAGE = "/Api/Cache/GetNextMessage"
DELETE_MESSAGE = "/Api/Cache/DeleteMessage"
SECRETS = frozenset({"Username", "UserName", "Password"})
_TIME_FORMATS = ("%d.%m.%Y %H:%M:%S",)

EMPTY_BUFFER = "11204"
RESULTS: Mapping[str, Outcome] = {
    "0": Outcome.ITEMS,  # OK
    "11100": Outcome.REQUEST_REFUSED,  # AdrAdCInvalid
    "11101": Outcome.REQUEST_REFUSED,  # AdrNAdInvalid
    "11102": Outcome.REQUEST_REFUSED,  # AdrAdCMissing
    "11200": Outcome.REQUEST_REFUSED,  # MsgNoCharacters
    "11201": Outcome.REQUEST_REFUSED,  # MsgInvalidCharacters
    EMPTY_BUFFER: Outcome.NOTHING_NEW,  # NoNewMsg
    "11222": Outcome.RETRY_LATER,  # TooManyMessagesSameReceiver
    "11223": Outcome.RETRY_LATER,  # TooManyMessagesSameReceiverAndContent
    "11224": Outcome.REQUEST_REFUSED,  # DuplicateExternalId
    "11301": Outcome.RETRY_LATER,  # AccNoUnits: too few points on the account
    "11500": Outcome.REQUEST_REFUSED,  # IDMissing
    "11501": Outcome.REQUEST_REFUSED,  # IDInvalid: no such message (deleted already)
    "11701": Outcome.REQUEST_REFUSED,  # NotiOverflow: "limit the time period"
    "11800": Outcome.REQUEST_REFUSED,  # CBMsgError
    "11903": Outcome.RETRY_LATER,  # TechnicalProblem
    "11907": Outcome.RETRY_LATER,  # ErrorWhileProcessingTheAttachments
}
"""Every ResultCode of table 4.2, and what it means to a source that polls the buffer. Most are
the send orders' and should never come back from the buffer: they refuse the request."""


# -- requests ---------------------------------------------------------------------------------


def get_next_message_call(username: str, password: str, mobile_number: str = "") -> Call:
    """3.6.1: the oldest buffered message (of ``mobile_number``, a rented number, if given)."""
    query = [("Username", username), ("Password", password)]
    if mobile_number:
        query.append(("MobileNumber", mobile_number))
    return Call("GET", GET_NEXT_MESSAGE, query=tuple(query), secrets=SECRETS)


def delete_message_call(username: str, password: str, message_id: str) -> Call:
    """3.4.2 (3.6): take the message ``message_id`` out of the buffer."""
    query = (("UserName", username), ("Password", password), ("MessageID", message_id))
    return Call("GET", DELETE_MESSAGE, query=query, secrets=SECRETS)


# -- answers ----------------------------------------------------------------------------------


def read_status(status: int) -> Page | None:
    """4.1's statuses: 401 unknown or missing credentials, 403 too few points on the account
    (back off), 400 and 200 carry a ResultCode in their body (``None``: read it)."""
    if status == 400:
        return None
    if status == 403:
        return Page(Outcome.RETRY_LATER, reason="http_403")
    return http_status(status)


def read_get_next_message(response: RawRequest) -> Page:
    """An ``IncomingSMS``: one item (key ``MessageID``) with its inbound event, or nothing new
    (11204), or the outcome of an error code."""
    root = _document(response.body, "incomingsms")
    code, _ = _result(root)
    outcome = _outcome(code)
    if outcome is not Outcome.ITEMS:
        return _failure(outcome, code)
    message_id = _text(_child(root, "messageid")).strip()
    sms = _child(root, "sms")
    if not message_id or sms is None:
        raise PayloadError("ResultCode 0 without MessageID or SMS", reason="missing_field")
    event, when = _event(root, sms, message_id, response)
    return Page(Outcome.ITEMS, items=(Item(message_id, when, (event,)),), more=True)


def read_delete_message(response: RawRequest) -> Page:
    """A ``DeleteMsg``: ``nothing_new`` once deleted (an answer with no item in it), else the
    outcome of its error code (11501: no such message in the buffer, deleted already)."""
    code, _ = _result(_document(response.body, "deletemsg"))
    outcome = _outcome(code)
    if outcome is Outcome.ITEMS:
        return Page(Outcome.NOTHING_NEW)
    return _failure(outcome, code)


def _failure(outcome: Outcome, code: str) -> Page:
    reason = f"code_{code}" if code in RESULTS else "unknown_code"
    return Page(outcome, reason=reason)


def _outcome(code: str) -> Outcome:
    """A code table 4.2 does not list is a failure eCall may get over: retry later."""
    return RESULTS.get(code, Outcome.RETRY_LATER)


# -- XML --------------------------------------------------------------------------------------


def _name(element: Element) -> str:
    return element.tag.rpartition("}")[2].lower()


def _document(body: bytes, root_name: str) -> Element:
    root = parse_xml(body)
    if _name(root) != root_name:
        raise PayloadError(f"root element is not {root_name}", reason="unknown_document")
    return root


def _child(parent: Element, name: str) -> Element | None:
    return next((child for child in parent if _name(child) == name), None)


def _text(element: Element | None) -> str:
    return "" if element is None else element.text or ""


def _result(root: Element) -> tuple[str, str]:
    result = _child(root, "result")
    code = _text(_child(result, "resultcode")).strip() if result is not None else ""
    if not code:
        raise PayloadError("no ResultCode", reason="missing_field")
    return code, _text(_child(result, "resulttext")) if result is not None else ""


def _raw(root: Element, sms: Element) -> dict[str, JsonValue]:
    """Every field by its element's name, as received: the result, the id, the SMS's fields."""
    raw: dict[str, JsonValue] = {}
    result = _child(root, "result")
    for element in [*(result if result is not None else ()), *root, *sms]:
        if len(element) == 0:
            raw.setdefault(element.tag.rpartition("}")[2], element.text or "")
    return raw


def _event(
    root: Element, sms: Element, message_id: str, response: RawRequest
) -> tuple[Event, datetime | None]:
    """The inbound event of the SMS, and its time at eCall (``None`` when unreadable)."""
    fields = {_name(element): element.text or "" for element in sms}
    for name in ("addressto", "addressfrom", "message", "timestamp"):
        if name not in fields:
            raise PayloadError(f"SMS without {name}", reason="missing_field")
    try:
        when = local_time(fields["timestamp"], _TIME_FORMATS, ZURICH)
    except PayloadError:
        when = None
    details: dict[str, JsonValue] = {"via": "poll"}
    if when is None:
        details["timestamp_invalid"] = True
    data = EventData(
        provider=PROVIDER,
        channel=Channel.SMS,
        kind=Kind.INBOUND,
        state=State.RECEIVED,
        final=True,
        message_id=message_id,
        recipient=to_e164(fields["addressto"], "CH"),
        sender=to_e164(fields["addressfrom"], "CH"),
        text=fields["message"],
        details=details,
        raw=_raw(root, sms),
        received_at=response.received_at,
    )
    return Event.of(data, when, identity=message_id), when


READERS: Mapping[str, Callable[[RawRequest], Page]] = {
    "GetNextMessage": read_get_next_message,
    "DeleteMessage": read_delete_message,
}
"""The reader of each method, by the name a source gives in ``RawRequest.callback``."""
