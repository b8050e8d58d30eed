"""sMsmode's list of replies, ``responseList.do`` (seed 004, section 14): how to ask, how to read.

The request (HTTP API 1.6, GET): ``accessToken`` (the secret), and a date window
``startDate``/``endDate`` in ``ddMMyyyy-HH:mm``, French local time (the HTTP API's times are
Paris wall-clock times; with dates, ``start``/``offset`` pagination cannot be used: the window is
the page).

The answer: one line per reply, ``response_ID | reception_date | from | text | to | message_ID``
(the document writes the separator `` | ``; a bare ``|`` is read too). ``reception_date`` is
``ddMMyyyy-HH:mm`` French local time, ``from`` the person who replied, ``to`` sMsmode's number
that took the reply, ``message_ID`` our message it answers. The ``text`` may itself hold a ``|``:
the three fields before it and the two after it are counted from each end of the line. An empty
answer is an empty list.

An error is the HTTP API's ``code_retour | description``: the method documents 32
(authentication) and 35 (bad parameter: ``accessToken`` is mandatory); the API's other codes
(31 internal error, 33 insufficient credits, 50 temporarily unavailable) are mapped too. Any
other code, or a line that is neither, is an answer we cannot understand: a
:class:`PayloadError` (the source quarantines its bytes).

Each reply gives the event the reply callback gives (``parsers.smsmode``, item 13): same
vocabulary and fields, and the same id (``Event.of(..., identity=response_ID)``), so that a reply
both pushed and polled is one event once the pipeline worker has seen both.
``details["via"] = "poll"``; ``raw`` holds the line's fields under the document's names.
"""

from __future__ import annotations

import codecs
import re
from datetime import UTC, datetime
from typing import Final

from core.errors import PayloadError
from core.models import Channel, Event, EventData, Kind, Provider, RawRequest, State
from parsers.phones import to_e164
from parsers.pull.base import Call, Item, Outcome, Page, http_status
from parsers.smsmode import TIME_FORMATS
from parsers.text import DEFAULT_CHARSETS, decode_text, without_bom
from parsers.times import PARIS, local_time

PROVIDER = Provider.SMSMODE
RESPONSE_LIST = "responseList"
"""The method's name: ``RawRequest.callback`` of its answers, the quarantine's and metrics'."""
RESPONSE_LIST_PATH = "/responseList.do"
"""Under the HTTP API's base address, ``https://api.smsmode.com/http/1.6``."""
QUERY_TIME = "%d%m%Y-%H:%M"
"""``startDate``/``endDate``, French local time."""
SECRET_FIELDS: Final = frozenset({"accessToken"})

FIELDS: Final = ("response_ID", "reception_date", "from", "text", "to", "message_ID")

ERRORS: Final[dict[str, tuple[Outcome, str]]] = {
    "31": (Outcome.RETRY_LATER, "internal_error"),
    "32": (Outcome.CREDENTIALS_REFUSED, "authentication_error"),
    "33": (Outcome.CREDENTIALS_REFUSED, "insufficient_credits"),
    "35": (Outcome.REQUEST_REFUSED, "bad_parameter"),
    "50": (Outcome.RETRY_LATER, "temporarily_unavailable"),
}
"""The HTTP API's return codes (``code_retour``): 32 and 35 are the method's own; 31, 33 and 50
the API's others. Insufficient credits is the account's state, which a person must change: as
refused credentials, a long back-off said loudly."""

_LINES = re.compile(r"\r?\n")
_CODE = re.compile(r"\s*([0-9]+)\s*(?:\|.*)?")
_CHARSET = re.compile(r"charset\s*=\s*\"?([A-Za-z0-9._:-]+)", re.IGNORECASE)


def response_list_call(token: str, start: datetime, end: datetime) -> Call:
    """``responseList.do`` for the replies received from ``start`` to ``end`` (aware times; sent
    to the minute, Paris wall clock)."""
    return Call(
        method="GET",
        path=RESPONSE_LIST_PATH,
        query=(
            ("accessToken", token),
            ("startDate", query_time(start)),
            ("endDate", query_time(end)),
        ),
        secrets=SECRET_FIELDS,
    )


def query_time(when: datetime) -> str:
    """An aware time as ``startDate``/``endDate`` write it (a naive one is a ``ValueError``)."""
    if when.tzinfo is None:
        raise ValueError("an aware time is needed")
    return when.astimezone(PARIS).strftime(QUERY_TIME)


def read_response_list(response: RawRequest) -> Page:
    """The replies of one answer of ``responseList.do``, or what its error code means."""
    text = decode_text(without_bom(response.body), _charsets(response.content_type))
    lines = [line for line in _LINES.split(text) if line.strip()]
    if not lines:
        return Page(Outcome.NOTHING_NEW)
    if lines[0].count("|") < len(FIELDS) - 1:
        return _error(lines)
    items = [_item(line, response) for line in lines]
    return Page(Outcome.ITEMS, items)


def _error(lines: list[str]) -> Page:
    match = _CODE.fullmatch(lines[0])
    if len(lines) > 1 or match is None:
        raise PayloadError("neither a list of replies nor a return code", reason="bad_line")
    known = ERRORS.get(match.group(1))
    if known is None:
        raise PayloadError("an unknown return code", reason="unknown_code")
    outcome, reason = known
    return Page(outcome, reason=reason)


def _item(line: str, response: RawRequest) -> Item:
    parts = line.split("|")
    if len(parts) < len(FIELDS):
        raise PayloadError("a line with fewer than six fields", reason="bad_line")
    spaced = parts[0].endswith(" ") and parts[1].startswith(" ")
    text = "|".join(parts[3:-2])
    if spaced and len(text) >= 2 and text[0] == text[-1] == " ":
        text = text[1:-1]  # the separator's spaces, not the reply's
    values = [*(p.strip() for p in parts[:3]), text, *(p.strip() for p in parts[-2:])]
    raw = dict(zip(FIELDS, values, strict=True))
    response_id = raw["response_ID"]
    if not response_id:
        raise PayloadError("a reply without response_ID", reason="missing_field")
    when = local_time(raw["reception_date"], TIME_FORMATS, PARIS)
    data = EventData(
        provider=PROVIDER,
        channel=Channel.SMS,
        kind=Kind.INBOUND,
        state=State.RECEIVED,
        final=True,
        message_id=response_id,
        related_message_id=raw["message_ID"] or None,
        recipient=to_e164(raw["to"] or None),
        sender=to_e164(raw["from"] or None),
        text=raw["text"],
        details={"via": "poll"},
        raw=dict(raw),
        received_at=response.received_at,
    )
    return Item(response_id, when.astimezone(UTC), [Event.of(data, when, identity=response_id)])


def _charsets(content_type: str) -> tuple[str, ...]:
    """The declared charset first (when Python knows it), then UTF-8 and ISO-8859-15 (the HTTP
    API's)."""
    match = _CHARSET.search(content_type)
    if match is None:
        return DEFAULT_CHARSETS
    try:
        declared = codecs.lookup(match.group(1)).name
    except LookupError:
        return DEFAULT_CHARSETS
    return (declared, *(c for c in DEFAULT_CHARSETS if codecs.lookup(c).name != declared))


READERS: Final = {RESPONSE_LIST: read_response_list}
"""The readers by method name (``RawRequest.callback`` of their answers)."""

read_status = http_status
"""The document says nothing of HTTP statuses: the common rule (``parsers.pull.base``); every
error the method documents comes in a body (``code_retour | description``)."""
