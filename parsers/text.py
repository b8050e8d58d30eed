"""Text from the bytes providers send: charsets, lenient percent-decoding, query strings and forms.

Nothing here raises on odd bytes: invalid escapes are kept literally, and bytes that are not
UTF-8 are read in the provider's other charset.
"""

from __future__ import annotations

import codecs
import re
from binascii import a2b_qp
from collections.abc import Mapping, Sequence
from functools import lru_cache

from core.errors import PayloadError

UTF8_BOM = b"\xef\xbb\xbf"
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
    # ``unquote_to_bytes(value.replace(b"+", b" "))``, in C: with every ``%`` an escape, the
    # escapes are quoted-printable's ``=XX`` written with ``%``, so binascii decodes them once
    # each ``=`` is one such escape itself (``=3D``); unquote_to_bytes loops in Python.
    decoded = a2b_qp(value.replace(b"+", b" ").replace(b"=", b"=3D").replace(b"%", b"="))
    # Every ``%`` was an escape when each took 3 bytes to 1 (the ``=3D`` give their 2 back):
    # binascii reads any other ``=`` (a lone one, ``==``, one at the end) to at most one byte
    # less, except a soft line break (``=`` before CR or LF), hence the scan when there is one.
    # The scan cost about 13,000 of the 200,000 instructions of eCampaign's parse path
    # (callgrind, its sample: 191 bytes, 29 escapes); these checks cost next to nothing.
    if (
        len(decoded) == len(value) - 2 * value.count(b"%")
        and b"\n" not in value
        and b"\r" not in value
    ):
        return decoded
    return value if _INVALID_PERCENT.search(value) else decoded


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
    ``decode_text(unquote_lenient(value))``. This runs on every GET callback, so it takes
    shortcuts to the same text (a test holds it to that definition): names, the same few on every
    callback of a provider, are remembered; and in an ASCII query (text outside ASCII travels
    percent-encoded) a value with nothing to unquote is its own text, and one with escapes is
    unquoted in line (:func:`_unquoted_text`).
    """
    charsets = tuple(charsets)
    plain_is_text = raw.isascii() and _reads_ascii(charsets[0])
    names = _NAMES.get(charsets)
    if names is None:
        names = {}
        if len(_NAMES) < _CHARSETS_KEPT:  # the parsers' few; any other list is not kept
            _NAMES[charsets] = names
    fields: dict[str, str] = {}
    # Latin-1 maps each byte to the character of the same number and back, so splitting its
    # text is splitting the bytes; ``.encode("latin-1")`` gives a part's bytes back.
    for part in raw.decode("latin-1").split("&"):
        name, _, value = part.partition("=")
        key = names.get(name)
        if key is None:
            key = _field_name(name, charsets)
            if len(names) < _NAMES_KEPT:  # bounded: names are the sender's choice
                names[name] = key
        if not key:
            continue
        if lower_keys:
            key = key.lower()
        if key in fields:  # the first one wins: no need to decode this one
            continue
        if not plain_is_text:
            fields[key] = decode_text(unquote_lenient(value.encode("latin-1")), charsets)
        elif "%" not in value:  # nothing to unquote: its own text, ``+`` a space
            fields[key] = value.replace("+", " ") if "+" in value else value
        else:
            fields[key] = _unquoted_text(value, charsets)
    return fields


def _unquoted_text(value: str, charsets: tuple[str, ...]) -> str:
    """``decode_text(unquote_lenient(value.encode("latin-1")), charsets)`` for a value of an
    ASCII query with a ``%``, in a third of the time for the usual one (no ``=``, CR or LF):
    unquote_lenient's binascii way done on the text, then the charsets tried in line."""
    if "=" in value or "\n" in value or "\r" in value:
        return decode_text(unquote_lenient(value.encode("latin-1")), charsets)
    data = a2b_qp(value.replace("+", " ").replace("%", "=").encode("latin-1"))
    if len(data) != len(value) - 2 * value.count("%"):  # a ``%`` that starts no escape
        return value  # kept literally (ASCII: the first charset reads it as it is)
    if data.isascii():
        return data.decode("latin-1")
    if len(charsets) == 1:
        return data.decode(charsets[0], errors="replace")
    try:
        return data.decode(charsets[0])
    except UnicodeDecodeError:
        return decode_text(data, charsets[1:])


_NAMES: dict[tuple[str, ...], dict[str, str]] = {}
"""Per charsets (the parsers' constants), field names as split → decoded: a dict lookup, where
an ``lru_cache`` costs a call and a tuple's hash per field."""
_NAMES_KEPT = 1024
_CHARSETS_KEPT = 16


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


def without_bom(data: bytes) -> bytes:
    """``data`` without a leading UTF-8 byte order mark (some senders put one before JSON/XML)."""
    return data.removeprefix(UTF8_BOM)


_COUNT = re.compile(r"[0-9]{1,18}")


def count(value: str) -> int | None:
    """A count given as digits, as a number; ``None`` when it is not one or does not fit in 64
    bits (the journal's JSON holds no larger integer: such a value is kept as text)."""
    return int(value) if _COUNT.fullmatch(value) else None
