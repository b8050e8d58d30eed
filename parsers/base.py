"""What every parser shares: the module contract, decoding, phone numbers, times and code tables.

A parser module is pure: ``parse(request) -> list[Event]`` with no I/O and no clock, and the
provider's acknowledgement contract in ``ack``/``nack``/``retry``.
"""

from __future__ import annotations

import codecs
import re
import tomllib
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache, lru_cache
from importlib import resources
from typing import Protocol
from urllib.parse import unquote_to_bytes
from xml.etree.ElementTree import Element, ParseError
from xml.etree.ElementTree import fromstring as xml_fromstring
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
_INVALID_PERCENT = re.compile(rb"%(?![0-9A-Fa-f]{2})")
"""A ``%`` that does not start an escape (``%`` and two hex digits)."""


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
    if _INVALID_PERCENT.search(value):
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

    A name is ``decode_text(unquote_lenient(name.strip()))``, a value
    ``decode_text(unquote_lenient(value))``. This runs on every GET callback, so it takes two
    shortcuts to the same text (a test holds it to that definition): names, the same few on every
    callback of a provider, are remembered; and in an ASCII query (text outside ASCII travels
    percent-encoded) a value with nothing to unquote is its own text.
    """
    charsets = tuple(charsets)
    plain_is_text = raw.isascii() and _reads_ascii(charsets[0])
    fields: dict[str, str] = {}
    # Latin-1 maps each byte to the character of the same number and back, so splitting its
    # text is splitting the bytes; ``.encode("latin-1")`` gives a part's bytes back.
    for part in raw.decode("latin-1").split("&"):
        name, _, value = part.partition("=")
        key = _field_name(name, charsets)
        if not key:
            continue
        if lower_keys:
            key = key.lower()
        if key in fields:  # the first one wins: no need to decode this one
            continue
        if plain_is_text and "%" not in value and "+" not in value:
            fields[key] = value
        else:
            fields[key] = decode_text(unquote_lenient(value.encode("latin-1")), charsets)
    return fields


@lru_cache(maxsize=1024)  # bounded: names are the sender's choice
def _field_name(name: str, charsets: tuple[str, ...]) -> str:
    """A field name (Latin-1 text of its bytes, as :func:`decode_query` splits them) decoded."""
    return decode_text(unquote_lenient(name.encode("latin-1").strip()), charsets)


_ASCII_CHARSETS = frozenset({"ascii", "utf-8", "iso8859-1", "iso8859-15", "cp1252"})


@lru_cache(maxsize=64)
def _reads_ascii(charset: str) -> bool:
    """``charset`` reads ASCII bytes as the same characters (not so for UTF-16, UTF-7...)."""
    try:
        return codecs.lookup(charset).name in _ASCII_CHARSETS
    except LookupError:
        return False  # the slow path says it


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
    entities and quadratic blow-up are refused before anything is expanded.

    A document that cannot hold a DTD (:func:`_without_dtd`), as providers send them, goes to
    the standard parser instead: the same expat builds the same tree, in C and twice as fast.
    """
    try:
        if _without_dtd(document):  # so nothing for defusedxml to refuse
            return xml_fromstring(document)  # noqa: S314
        root: Element = fromstring(document, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise PayloadError(
            f"refused XML construct: {type(exc).__name__}", reason="forbidden_xml"
        ) from exc
    except (ParseError, ValueError) as exc:
        raise PayloadError(f"invalid XML: {exc}", reason="invalid_xml") from exc
    return root


_UTF8_BOM = b"\xef\xbb\xbf"
_PLAIN_XML_DECLARATION = re.compile(
    rb"<\?xml\s+version\s*=\s*(['\"])1\.[0-9]+\1"
    rb"(?:\s+encoding\s*=\s*(['\"])(?i:utf-8|us-ascii|iso-8859-1)\2)?"
    rb"(?:\s+standalone\s*=\s*(['\"])(?:yes|no)\3)?\s*\?>"
)
"""An XML declaration naming no encoding, or one where ``<!`` can only be the bytes ``<!``."""


def _without_dtd(document: bytes | str) -> bool:
    """``document`` has no ``<!DOCTYPE`` (nor comment or CDATA: no ``<!`` at all), for sure.

    Text is read as it is (expat ignores its declared encoding). Bytes are read in UTF-8 unless a
    BOM or the XML declaration says otherwise: any NUL byte (UTF-16 and UTF-32 put one in every
    ``<``) or declaration other than a plain UTF-8, ASCII or Latin-1 one, and the document is
    left to defusedxml.
    """
    if isinstance(document, str):
        return "<!" not in document
    if b"<!" in document or b"\x00" in document:
        return False
    start = document.removeprefix(_UTF8_BOM)
    return not start.startswith(b"<?xml") or _PLAIN_XML_DECLARATION.match(start) is not None


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
            naive = datetime.fromisoformat(text)
            offset = zone.utcoffset(naive)  # a naive time is read as the zone's wall clock
            if offset is not None:
                # to_utc(naive.replace(tzinfo=zone)) in a quarter of the time (replace() and
                # astimezone() are the slow part): the same time read in UTC, minus the offset
                with suppress(OverflowError):  # out of UTC's range: to_utc says so
                    return datetime.fromisoformat(f"{text}+00:00") - offset
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
