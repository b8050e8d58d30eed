"""What an operator types, as the read model holds it: a phone number in any form a person
writes one (``06 12 34 56 78``, ``+33612345678``, ``0041 79 123 45 67``, ``33612345678``), a
time, a word of the vocabulary; and a lookup's query string (filters, page size, cursor) made
into the index's :class:`~sinks.index.Filters`, or a :class:`BadQuery` naming what is wrong.

Numbers are normalized as the parsers normalize them (``parsers.phones.to_e164``): national
numbers are French, but eCall's, which its parser reads as Swiss. A national number therefore
looks for its French form in every other provider's events and its Swiss form in eCall's; a
number in an international form is the same everywhere. What is not a number (an e-mail
address, a push token) is looked for as typed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import msgspec

from core.vocabulary import Channel, Failure, Kind, Provider, State
from parsers.phones import to_e164
from sinks.index import Filters, Party

NATIONAL_REGION = "FR"
"""The country of a national number, as the parsers read it..."""
REGIONS: Mapping[Provider, str] = {Provider.ECALL: "CH"}
"""... but for these providers' parsers (``parsers/ecall.py``: ``to_e164(..., "CH")``)."""

DEFAULT_LIMIT = 50
MAX_LIMIT = 500

_AGO = re.compile(r"(\d{1,5})([smhd])")
"""A duration ago: up to five digits (99999 days is within what a datetime holds)."""
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
TIME_FORMS = "an ISO 8601 time, a duration ago (30m, 2h, 7d), today or yesterday"
"""What :func:`when` reads, for help texts and errors."""


class BadQuery(ValueError):
    """A lookup's parameter that cannot be read: the message names it and what it takes."""


def when(text: str, now: datetime | None = None) -> datetime:
    """A time a person gives: an ISO 8601 time (UTC when no offset is given; a date alone is
    its midnight, UTC), a duration ago (``90s``, ``30m``, ``2h``, ``7d``), ``today`` or
    ``yesterday`` (midnight UTC starting that day). ValueError for anything else."""
    now = now or datetime.now(UTC)
    if ago := _AGO.fullmatch(text):
        return now - timedelta(**{_UNITS[ago.group(2)]: int(ago.group(1))})
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if text == "today":
        return midnight
    if text == "yesterday":
        return midnight - timedelta(days=1)
    try:
        moment_ = datetime.fromisoformat(text)
    except ValueError:  # RFC 3339 forms Python 3.11's reader refuses (a "z", 9 digits of seconds)
        try:
            moment_ = msgspec.json.decode(msgspec.json.encode(text), type=datetime)
        except msgspec.ValidationError:
            raise ValueError(text) from None
    return moment_ if moment_.tzinfo else moment_.replace(tzinfo=UTC)


TIME_SCHEMA = {
    "anyOf": [
        {"type": "string", "format": "date-time"},
        {"type": "string", "format": "date"},
        {"type": "string", "pattern": r"^[0-9]{1,5}[smhd]$"},
        {"type": "string", "enum": ["today", "yesterday"]},
    ]
}
"""The forms :func:`when` reads, as an OpenAPI schema (the API's parameters)."""


def parties(text: str) -> tuple[Party, ...]:
    """The forms the parsers would have given the number typed, each with the providers whose
    events hold that form (None: all of them)."""
    regions = {NATIONAL_REGION, *REGIONS.values()}
    forms = {region: to_e164(text, region) for region in regions}
    if None in forms.values():
        raise BadQuery("phone: a number (or an address) is needed")
    if len(set(forms.values())) == 1:
        return (Party(str(forms[NATIONAL_REGION])),)
    found: dict[str, list[str]] = {}
    for provider in Provider:
        form = str(forms[REGIONS.get(provider, NATIONAL_REGION)])
        found.setdefault(form, []).append(provider.value)
    return tuple(Party(form, tuple(providers)) for form, providers in found.items())


MAX_CURSOR = 2**63 - 1
"""The largest integer SQLite holds (PostgreSQL's ``bigint`` too): a cursor past it is no
cursor this API gave."""


def cursor_of(place: int) -> int:
    """The cursor of a page that goes on after (below) ``place``, an event's place in the
    index's order (the local index's ``seq``, the shared index's ``n``): that number (as the
    quarantine's pages have it)."""
    return place


def seq_of(cursor: str) -> int:
    """The place in the index's order a cursor stands for; BadQuery for anything else."""
    if not (cursor.isascii() and cursor.isdigit()) or not 1 <= int(cursor) <= MAX_CURSOR:
        raise BadQuery("cursor: not a cursor this API gave (take next_cursor as it is)")
    return int(cursor)


@dataclass(frozen=True, slots=True)
class Query:
    """A lookup of events: what they must match, how many, from where."""

    filters: Filters
    limit: int = DEFAULT_LIMIT
    before: int | None = None
    """Only events placed below it in the index's order (the cursor's page)."""
    after: int | None = None
    """Only events placed above it (the console's live view; not an API parameter)."""


PARAMETERS: Mapping[str, str] = {
    "provider": f"the provider: {', '.join(Provider)}",
    "channel": f"the channel: {', '.join(Channel)}",
    "kind": f"what the event is about: {', '.join(Kind)}",
    "state": f"the unified state: {', '.join(State)}",
    "failure": f"for failures, whether trying again could help: {', '.join(Failure)}",
    "message_id": "the provider's id of the message",
    "reference": "the sender's own reference, given when the message was sent",
    "phone": (
        "the sender or the recipient: a phone number in any form (06 12 34 56 78,"
        " +33612345678, 0041 79 123 45 67...; national numbers as the parsers read them:"
        " French, Swiss for eCall), or an address as the event holds it"
    ),
    "since": f"the provider's time of the event at or after: {TIME_FORMS}",
    "until": "the provider's time of the event before (same forms)",
    "received_since": "received by the hub at or after (same forms)",
    "received_until": "received by the hub before (same forms)",
    "limit": f"events per page, 1 to {MAX_LIMIT} ({DEFAULT_LIMIT})",
    "cursor": "the next_cursor of the previous page",
}
"""The query string a lookup of events reads, and what each parameter is."""

_WORDS: Mapping[str, type[StrEnum]] = {
    "provider": Provider,
    "channel": Channel,
    "kind": Kind,
    "state": State,
    "failure": Failure,
}
_TIMES = ("since", "until", "received_since", "received_until")


def query(params: Mapping[str, str], now: datetime | None = None) -> Query:
    """The lookup a query string asks for (an empty parameter is one not given; names it does
    not know are the caller's: see :data:`PARAMETERS`). BadQuery names what cannot be read."""
    given = {name: params[name].strip() for name in PARAMETERS if params.get(name, "").strip()}
    words = {name: word(name, given[name], _WORDS[name]) for name in _WORDS if name in given}
    times: dict[str, float] = {}
    for name in _TIMES:
        if name in given:
            try:
                times[name] = when(given[name], now).timestamp()
            except (ValueError, OverflowError):
                raise BadQuery(f"{name}: expected {TIME_FORMS}") from None
    filters = Filters(
        provider=words.get("provider"),
        channel=words.get("channel"),
        kind=words.get("kind"),
        state=words.get("state"),
        failure=words.get("failure"),
        message_id=given.get("message_id"),
        reference=given.get("reference"),
        parties=parties(given["phone"]) if "phone" in given else (),
        since=times.get("since"),
        until=times.get("until"),
        received_since=times.get("received_since"),
        received_until=times.get("received_until"),
    )
    before = seq_of(given["cursor"]) if "cursor" in given else None
    return Query(filters, _limit(given.get("limit")), before)


def word(name: str, text: str, words: type[StrEnum]) -> str:
    """``text`` if it is one of ``words`` (case as typed is forgiven); BadQuery otherwise."""
    try:
        return words(text.lower()).value
    except ValueError:
        raise BadQuery(f"{name}: one of {', '.join(words)}") from None


def _limit(text: str | None) -> int:
    if text is None:
        return DEFAULT_LIMIT
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_LIMIT:
        raise BadQuery(f"limit: a whole number from 1 to {MAX_LIMIT}")
    return int(text)
