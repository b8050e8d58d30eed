"""eCampaign (PROSOLUCE, seed 000, p.41-43): how to ask for the replies and the blacklists of a
channel, and what the answers mean. eCampaign pushes no reply at all: polling is the only way
a STOP sent to an eCampaign number reaches the hub.

Two methods per channel (``sms``, ``fax``, ``mail``: "CAN devra être remplacé par le canal
choisi", p.9), POSTed like every method (p.7) with the form field ``xml``, UTF-8:

- ``/manageFeedback/<channel>/getResponses``: the replies, each with ``DATE_HEURE`` (when it
  was received), ``INDICATIF`` and ``NUMERO`` (the sender's country code and number),
  ``MESSAGE`` (its text);
- ``/manageFeedback/<channel>/getBlacklist``: the blacklisted recipients, each with
  ``DATE_HEURE`` (when), ``INDICATIF``/``NUMERO`` (sms, fax) or ``EMAIL`` (mail), ``RAISON``
  (why, when known).

The text conversion of the document lost both methods' request and answer samples (p.41 and 43
hold only the headings "Requête" and "Réponse"). The request is therefore written as every
method's sample writes it (getMember p.19, getCDR p.45)::

    <?xml version="1.0"?><ecampaign><login><user>…</user><password>…</password></login>
    <manageFeedback><getResponses></getResponses></manageFeedback></ecampaign>

(``<md5>true</md5>`` in ``login`` when the password is given as its MD5, p.11). The whole
``xml`` field holds the password: it is the secret of the :class:`Call`. The answer is read the
way the documented answers are written (the synchronous send response p.17, getCDR p.46,
getMailEvents p.48): ``<ecampaign><code>CODE_RETOUR</code><message>…</message>`` and one element
holding the list, one child element per entry (or the entries right under ``ecampaign``).
An entry's fields are its attributes and its child elements (and theirs, one level down:
``<phone><code/><number/></phone>``), by lower-cased name, in the spellings the document uses
for the same facts (:data:`_NAMES`): the date ``date`` or ``date_heure``, the country code
``code``/``indicatif``, the number ``number``/``numero``, the address
``email``/``mail``/``mail_recipient``, the text ``message``/``content``, the reason
``reason``/``raison``. ``raw`` keeps every field as received.

Events (the hub's vocabulary; ``details.via`` = ``poll``):

- a reply: kind ``inbound``, state ``received``, the URL's channel, ``sender`` in E.164 (the
  country code and the number, which the document writes without its leading 0) or the e-mail
  address, ``text``;
- a blacklist entry: kind ``interaction``, state ``unsubscribed`` (what the recipient did: asked
  to receive nothing more; the tracking callback's code 57 says the same for a mail),
  ``recipient`` the blacklisted number or address, ``details.reason`` when eCampaign gives one.

Times: French local time, ``AAAA-MM-JJ HH:MM:SS`` or ``AAAA:MM:JJ HH:MM:SS`` (both appear in the
document); an unreadable one costs the entry its time only (``details.timestamp_invalid``).

No entry has an id: an item's key is its content hash, :func:`content_key` (sha256 of the
channel, the method and the entry's ``raw``), stable from one answer to the next, so a source
knows an entry it has read already; its event id is made of the same content (``Event.of``).

Return codes (annex p.51-53): 0 items (an empty list: nothing new), 81 "no result": nothing new,
3 (user or password invalid) and 4 (web services not enabled on the account): credentials
refused, 1, 2 and 80 (dates too far apart): request refused; any other code: retry later.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from datetime import datetime
from xml.etree.ElementTree import Element
from xml.sax.saxutils import escape

import orjson

from core.errors import PayloadError
from core.models import Channel, Event, EventData, Kind, Provider, RawRequest, State
from core.vocabulary import JsonValue
from parsers.ecampaign import TIMESTAMP_FORMATS
from parsers.phones import to_e164
from parsers.pull.base import Call, Item, Outcome, Page, http_status
from parsers.times import PARIS, local_time
from parsers.xml import parse_xml

PROVIDER = Provider.ECAMPAIGN
CHANNELS = (Channel.SMS, Channel.FAX, Channel.MAIL)
METHODS = ("getResponses", "getBlacklist")
SECRETS = frozenset({"xml"})
"""The form field ``xml`` holds the ``login`` block: the whole field is secret."""

RETURN_CODES: Mapping[str, Outcome] = {
    "0": Outcome.ITEMS,  # Opération effectuée avec succès
    "1": Outcome.REQUEST_REFUSED,  # Requête invalide
    "2": Outcome.REQUEST_REFUSED,  # Requête XML malformée ou invalide
    "3": Outcome.CREDENTIALS_REFUSED,  # Nom d'utilisateur et/ou mot de passe invalides
    "4": Outcome.CREDENTIALS_REFUSED,  # L'accès aux web-services n'est pas activé
    "80": Outcome.REQUEST_REFUSED,  # L'écart entre la date de début et de fin est trop important
    "81": Outcome.NOTHING_NEW,  # Votre demande n'a retourné aucun résultat
}
"""The annex's common codes and those of the listing methods, and what they mean to a source."""

_NAMES: Mapping[str, tuple[str, ...]] = {
    "date": ("date", "date_heure", "datetime", "timestamp"),
    "code": ("code", "indicatif", "phone_code"),
    "number": ("number", "numero", "phone_number"),
    "email": ("email", "e-mail", "mail", "mail_recipient"),
    "message": ("message", "content"),
    "reason": ("reason", "raison"),
}
"""Each fact of an entry, by the names the document gives it (placeholder and element names)."""
_FACT_NAMES = frozenset(name for names in _NAMES.values() for name in names)
_ANSWER_FIELDS = frozenset({"code", "message"})
"""The children of ``ecampaign`` that are the answer's return code and message, not a list."""


# -- requests ---------------------------------------------------------------------------------


def get_responses_call(channel: Channel, user: str, password: str, *, md5: bool = False) -> Call:
    """p.43: the replies received on ``channel``."""
    return _call(channel, "getResponses", user, password, md5)


def get_blacklist_call(channel: Channel, user: str, password: str, *, md5: bool = False) -> Call:
    """p.41: the recipients blacklisted on ``channel``."""
    return _call(channel, "getBlacklist", user, password, md5)


def _call(channel: Channel, method: str, user: str, password: str, md5: bool) -> Call:
    if channel not in CHANNELS:
        raise ValueError(f"eCampaign has no feedback for the channel {channel.value}")
    md5_line = "\n             <md5>true</md5>" if md5 else ""
    document = f"""<?xml version="1.0"?>
<ecampaign>
      <login>
             <user>{escape(user)}</user>
             <password>{escape(password)}</password>{md5_line}
      </login>
      <manageFeedback>
             <{method}></{method}>
      </manageFeedback>
</ecampaign>
"""
    path = f"/manageFeedback/{channel.value}/{method}"
    return Call("POST", path, form=(("xml", document),), secrets=SECRETS)


def callback(channel: Channel, method: str) -> str:
    """The name a source gives an answer in ``RawRequest.callback``: ``sms/getResponses``."""
    return f"{channel.value}/{method}"


# -- answers ----------------------------------------------------------------------------------


def read_status(status: int) -> Page | None:
    """The document says nothing of HTTP statuses (every answer is XML with its code)."""
    return http_status(status)


def read_get_responses(response: RawRequest) -> Page:
    return _read(response, "getResponses")


def read_get_blacklist(response: RawRequest) -> Page:
    return _read(response, "getBlacklist")


def _read(response: RawRequest, method: str) -> Page:
    channel = _channel(response.callback)
    root = parse_xml(response.body)
    if _name(root) != "ecampaign":
        raise PayloadError("root element is not ecampaign", reason="unknown_document")
    code = next((_text(e).strip() for e in root if _name(e) == "code"), "0")
    outcome = RETURN_CODES.get(code, Outcome.RETRY_LATER)
    if outcome is not Outcome.ITEMS:
        return Page(outcome, reason=f"code_{code}" if code in RETURN_CODES else "unknown_code")
    items = [_item(entry, channel, method, response) for entry in _entries(root)]
    return Page(Outcome.ITEMS, items=items) if items else Page(Outcome.NOTHING_NEW)


def _entries(root: Element) -> list[Element]:
    """The entries of the answer: the children of the element holding the list; a child of
    ``ecampaign`` that holds an entry's own facts (a date, a number...) is an entry itself."""
    entries: list[Element] = []
    for element in root:
        if _name(element) in _ANSWER_FIELDS:
            continue
        if any(len(child) == 0 and _name(child) in _FACT_NAMES for child in element):
            entries.append(element)
        else:
            entries += list(element)
    return entries


def _channel(name: str) -> Channel:
    """The channel of ``sms/getResponses``."""
    value = name.partition("/")[0]
    channel = next((c for c in CHANNELS if c.value == value), None)
    if channel is None:
        raise PayloadError("no eCampaign feedback channel named", reason="unknown_callback")
    return channel


def content_key(channel: Channel, method: str, raw: Mapping[str, JsonValue]) -> str:
    """An entry's key: sha256 (hex) of ``[channel, method, raw]`` as JSON with sorted keys."""
    canonical = orjson.dumps([channel.value, method, raw], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


def _item(entry: Element, channel: Channel, method: str, response: RawRequest) -> Item:
    raw = _raw(entry)
    fields = _fields(entry)
    when, details = _when(fields.get("date"))
    address = _address(channel, fields)
    if method == "getResponses":
        kind, state = Kind.INBOUND, State.RECEIVED
        text: str | None = fields.get("message", "")
        sender, recipient = address, None
    else:
        kind, state, text = Kind.INTERACTION, State.UNSUBSCRIBED, None
        sender, recipient = None, address
        if fields.get("reason", "").strip():
            details["reason"] = fields["reason"].strip()
    data = EventData(
        provider=PROVIDER,
        channel=channel,
        kind=kind,
        state=state,
        final=True,
        sender=sender,
        recipient=recipient,
        text=text,
        details=details,
        raw=raw,
        received_at=response.received_at,
    )
    return Item(content_key(channel, method, raw), when, (Event.of(data, when),))


def _when(value: str | None) -> tuple[datetime | None, dict[str, JsonValue]]:
    details: dict[str, JsonValue] = {"via": "poll"}
    if value is None or not value.strip():
        return None, details
    try:
        return local_time(value, TIMESTAMP_FORMATS, PARIS), details
    except PayloadError:
        details["timestamp_invalid"] = True
        return None, details


def _address(channel: Channel, fields: Mapping[str, str]) -> str | None:
    """The e-mail address (mail), else the number: ``+<code><number>`` in E.164."""
    email = fields.get("email", "").strip()
    if channel is Channel.MAIL and email:
        return email
    number = fields.get("number", "").strip()
    code = fields.get("code", "").strip().removeprefix("+").removeprefix("00")
    if number and code.isdigit() and number[:1].isdigit() and not number.startswith("0"):
        return to_e164(f"+{code}{number}")
    return to_e164(number) if number else (email or None)


# -- XML --------------------------------------------------------------------------------------


def _name(element: Element) -> str:
    return element.tag.rpartition("}")[2].lower()


def _text(element: Element) -> str:
    return element.text or ""


def _fields(entry: Element) -> dict[str, str]:
    """The entry's facts by :data:`_NAMES`: attributes, leaf children, leaf grandchildren (the
    text of an entry that has no child is its message)."""
    found: dict[str, str] = {k.lower(): v for k, v in entry.attrib.items()}
    for child in entry:
        if len(child) == 0:
            found.setdefault(_name(child), _text(child))
        for grandchild in child:
            if len(grandchild) == 0:
                found.setdefault(_name(grandchild), _text(grandchild))
    if len(entry) == 0 and _text(entry).strip():  # <response code="33" ...>STOP</response>
        found.setdefault("message", _text(entry))
    fields: dict[str, str] = {}
    for fact, names in _NAMES.items():
        value = next((found[n] for n in names if n in found), None)
        if value is not None:
            fields[fact] = value
    return fields


def _raw(entry: Element) -> dict[str, JsonValue]:
    """The entry as received: attributes, child elements (two levels), repeated names as lists,
    ``#text`` for the text of an element that also has attributes."""
    raw: dict[str, JsonValue] = dict(entry.attrib)
    if len(entry) == 0 and _text(entry).strip():
        raw["#text"] = _text(entry)
    for child in entry:
        value: JsonValue
        if len(child) == 0 and not child.attrib:
            value = _text(child)
        else:
            nested: dict[str, JsonValue] = dict(child.attrib)
            for grandchild in child:
                nested.setdefault(grandchild.tag, _text(grandchild))
            if len(child) == 0:
                nested["#text"] = _text(child)
            value = nested
        previous = raw.get(child.tag)
        if child.tag not in raw:
            raw[child.tag] = value
        elif isinstance(previous, list):
            raw[child.tag] = [*previous, value]
        else:
            raw[child.tag] = [previous, value]
    return raw


READERS: Mapping[str, Callable[[RawRequest], Page]] = {
    callback(channel, method): reader
    for channel in CHANNELS
    for method, reader in (
        ("getResponses", read_get_responses),
        ("getBlacklist", read_get_blacklist),
    )
}
"""The reader of each method, by :func:`callback`'s name (the channel, then the method)."""
