"""What every parser shares: the module contract, decoding, phone numbers, times and code tables.

A parser module is pure: ``parse(request) -> list[Event]`` with no I/O and no clock, and the
provider's acknowledgement contract in ``ack``/``nack``/``retry``.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Protocol
from urllib.parse import unquote_to_bytes
from xml.etree.ElementTree import Element, ParseError
from zoneinfo import ZoneInfo

import phonenumbers
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring
from pydantic import BaseModel, ConfigDict, ValidationError

from hub.errors import HubError, PayloadError
from hub.models import Channel, Event, Failure, Kind, Provider, RawRequest, Reply, State

PARIS = ZoneInfo("Europe/Paris")
ZURICH = ZoneInfo("Europe/Zurich")


@dataclass(frozen=True, slots=True)
class Callback:
    """One callback style of a provider: its URL segment, HTTP methods and what it carries."""

    name: str
    methods: tuple[str, ...]
    summary: str


class ParserModule(Protocol):
    """What ``parsers/<slug>.py`` provides. The registry in ``parsers/__init__.py`` lists them."""

    PROVIDER: Provider
    CALLBACKS: Sequence[Callback]

    def parse(self, request: RawRequest) -> list[Event]: ...

    def ack(self, events: list[Event]) -> Reply: ...

    def nack(self, error: HubError) -> Reply: ...

    def retry(self, error: HubError) -> Reply: ...


# -- replies shared by providers that only want an HTTP status --------------------------------

OK_REPLY = Reply(status=200, body=b"OK")
"""A 200 with a short non-empty body: what providers that 'want a 200' are happy with."""


def ok(events: list[Event]) -> Reply:
    """The acknowledgement of providers that want a 200."""
    return OK_REPLY


def bad_request(error: HubError) -> Reply:
    """Their fault: a 400 naming the reason (a label, never the provider's data)."""
    return Reply(status=400, body=f"rejected: {error.reason}".encode())


def unavailable(error: HubError) -> Reply:
    """Our fault: a 503 so that the provider retries later."""
    return Reply(status=503, body=f"unavailable: {error.reason}".encode())


# -- text -------------------------------------------------------------------------------------

DEFAULT_CHARSETS: tuple[str, ...] = ("utf-8", "iso-8859-15")
_VALID_PERCENT = re.compile(rb"%[0-9A-Fa-f]{2}")


def decode_text(data: bytes, charsets: Sequence[str] = DEFAULT_CHARSETS) -> str:
    """Bytes to text: the first charset that decodes strictly; the last one never fails."""
    for charset in charsets[:-1]:
        try:
            return data.decode(charset)
        except UnicodeDecodeError:
            continue
    return data.decode(charsets[-1], errors="replace")


def unquote_lenient(value: bytes) -> bytes:
    """Percent-decode ``value`` (``+`` is a space), unless it holds an invalid ``%`` sequence.

    A value with a ``%`` that does not start a valid escape was not percent-encoded by its sender
    (iSendPro's own sample: ``Message%a%destination%de%...``); decoding only its valid-looking
    parts would corrupt it, so it is kept literally.
    """
    if b"%" not in value:
        return value.replace(b"+", b" ") if b"+" in value else value
    if value.count(b"%") != len(_VALID_PERCENT.findall(value)):
        return value
    return unquote_to_bytes(value.replace(b"+", b" "))


def decode_query(
    raw: bytes,
    charsets: Sequence[str] = DEFAULT_CHARSETS,
    *,
    lower_keys: bool = False,
) -> dict[str, str]:
    """A query string (or form body) to fields; the first of repeated names wins.

    Never raises: invalid escapes are kept literally, bytes that are not UTF-8 are read in the
    next charset (ISO-8859-15 by default).
    """
    fields: dict[str, str] = {}
    for part in raw.split(b"&"):
        name, _, value = part.partition(b"=")
        key = decode_text(unquote_lenient(name.strip()), charsets)
        if not key:
            continue
        if lower_keys:
            key = key.lower()
        fields.setdefault(key, decode_text(unquote_lenient(value), charsets))
    return fields


def required(fields: Mapping[str, str], name: str) -> str:
    value = fields.get(name)
    if value is None:
        raise PayloadError(f"missing field {name!r}", reason="missing_field")
    return value


def optional(fields: Mapping[str, str], name: str) -> str | None:
    """A field's value, ``None`` when absent or blank."""
    value = fields.get(name, "").strip()
    return value or None


# -- XML ------------------------------------------------------------------------------------


def parse_xml(document: bytes | str) -> Element:
    """XML through defusedxml with DTDs forbidden: entity expansion ("billion laughs"), external
    entities and quadratic blow-up are refused before anything is expanded."""
    try:
        root: Element = fromstring(document, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise PayloadError(
            f"refused XML construct: {type(exc).__name__}", reason="forbidden_xml"
        ) from exc
    except (ParseError, ValueError) as exc:
        raise PayloadError(f"invalid XML: {exc}", reason="invalid_xml") from exc
    return root


# -- phone numbers ----------------------------------------------------------------------------

_PHONE_CHARS = re.compile(r"[\s.\-/()]")
_COUNTRY_CODES = {"FR": "33", "CH": "41"}
_NATIONAL = re.compile(r"0([1-9]\d{8})")
_INTERNATIONAL = re.compile(r"(?:\+|00)?(33|41)([1-9]\d{8})")


def to_e164(value: str | None, region: str = "FR") -> str | None:
    """A phone number in E.164 when it can be read as one, else the value as given (stripped).

    Accepts national (``0612345678``), ``00``-international (``0041791234567``), ``+``-international
    and bare international (``33612345678``) forms. ``region`` is the country of national numbers.
    """
    if value is None or not value.strip():
        return None
    given = value.strip()
    digits = _PHONE_CHARS.sub("", given)
    # The forms most callbacks carry, French and Swiss (nine significant digits), read without
    # phonenumbers' full parse: it gives the same answer (a test holds them together).
    if (national := _NATIONAL.fullmatch(digits)) and region in _COUNTRY_CODES:
        return f"+{_COUNTRY_CODES[region]}{national.group(1)}"
    if international := _INTERNATIONAL.fullmatch(digits):
        return f"+{international.group(1)}{international.group(2)}"
    if digits.startswith("00"):
        candidate = "+" + digits[2:]
    elif digits.startswith("+") or digits.startswith("0"):
        candidate = digits
    elif digits.isdigit() and len(digits) >= 10:
        candidate = "+" + digits
    else:
        return given
    try:
        number = phonenumbers.parse(candidate, region)
    except phonenumbers.NumberParseException:
        return given
    if not phonenumbers.is_possible_number(number):
        return given
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


# -- times ------------------------------------------------------------------------------------


_ISO_SECONDS = "%Y-%m-%d %H:%M:%S"
_ISO_SECONDS_TEXT = re.compile(r"\d{4}-(0[1-9]|1[0-2])-\d{2} ([01]\d|2[0-3]):[0-5]\d:[0-5]\d")


def local_time(value: str, formats: Sequence[str], zone: ZoneInfo) -> datetime:
    """A provider's local wall-clock time (no zone given), in UTC.

    In the autumn hour that happens twice the first one is taken (``fold=0``); a time in the
    spring gap is read with the offset before the change.
    """
    text = value.strip()
    if _ISO_SECONDS in formats and _ISO_SECONDS_TEXT.fullmatch(text):  # the common case, fast
        with suppress(ValueError):  # 31 February and the like: strptime below says why
            naive = datetime(
                int(text[0:4]), int(text[5:7]), int(text[8:10]),
                int(text[11:13]), int(text[14:16]), int(text[17:19]),
            )  # fmt: skip
            return to_utc(naive.replace(tzinfo=zone))
    for fmt in formats:
        try:
            naive = datetime.strptime(text, fmt)  # naive: the zone is attached below
        except ValueError:
            continue
        return to_utc(naive.replace(tzinfo=zone))
    raise PayloadError(f"unreadable time {value!r}", reason="bad_timestamp")


def to_utc(when: datetime) -> datetime:
    """An aware time in UTC; one that UTC cannot hold (year 1 in Paris) is a payload error."""
    try:
        return when.astimezone(UTC)
    except (OverflowError, ValueError) as exc:
        raise PayloadError(f"time out of range {when!r}", reason="bad_timestamp") from exc


# -- code tables ------------------------------------------------------------------------------


class TableEntry(BaseModel):
    """One code of a provider's table, transcribed from its seed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    state: State
    final: bool
    failure: Failure | None = None
    kind: Kind | None = None
    """Overrides the callback's kind (a voice 'key pressed' is an interaction, not a delivery)."""
    channel: Channel | None = None
    """Overrides the callback's channel where the code tells it."""
    meaning: str
    """English meaning."""
    fr: str
    """The seed's own words."""


Tables = Mapping[str, Mapping[str, TableEntry]]


@cache
def load_tables(provider: Provider) -> Tables:
    """``parsers/tables/<slug>.toml``: table name → code → entry. Read once, validated."""
    text = resources.files("parsers").joinpath("tables", f"{provider.value}.toml").read_text()
    try:
        return {
            name: {code: TableEntry.model_validate(entry) for code, entry in table.items()}
            for name, table in tomllib.loads(text).items()
        }
    except ValidationError as exc:  # a broken table is a bug of ours: fail loudly at import
        raise RuntimeError(f"invalid code table for {provider.value}: {exc}") from exc
