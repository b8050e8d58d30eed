"""Provider times to UTC: local wall-clock times (Paris, Zurich) in a provider's formats, and
ISO-8601 times with or without an offset."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cache
from zoneinfo import ZoneInfo

from core.errors import PayloadError

PARIS = ZoneInfo("Europe/Paris")
ZURICH = ZoneInfo("Europe/Zurich")

_ISO_SECONDS = "%Y-%m-%d %H:%M:%S"
_ISO_SECONDS_TEXT = re.compile(r"\d{4}-(0[1-9]|1[0-2])-\d{2} ([01]\d|2[0-3]):[0-5]\d:[0-5]\d")
"""The most common format of all, read by ``fromisoformat`` (in C) when the text is its digits."""
_FAST_FORMATS: dict[str, re.Pattern[str]] = {
    "%Y-%m-%d %H:%M:%S": re.compile(
        r"(?P<Y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2}) (?P<H>\d{2}):(?P<M>\d{2}):(?P<S>\d{2})"
    ),
    "%Y-%m-%d %H:%M": re.compile(
        r"(?P<Y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2}) (?P<H>\d{2}):(?P<M>\d{2})(?P<S>)"
    ),
    "%d%m%Y-%H%M%S": re.compile(
        r"(?P<d>\d{2})(?P<m>\d{2})(?P<Y>\d{4})-(?P<H>\d{2})(?P<M>\d{2})(?P<S>\d{2})"
    ),
    "%d%m%Y-%H:%M": re.compile(
        r"(?P<d>\d{2})(?P<m>\d{2})(?P<Y>\d{4})-(?P<H>\d{2}):(?P<M>\d{2})(?P<S>)"
    ),
    "%d.%m.%Y %H:%M:%S": re.compile(
        r"(?P<d>\d{2})\.(?P<m>\d{2})\.(?P<Y>\d{4}) (?P<H>\d{2}):(?P<M>\d{2}):(?P<S>\d{2})"
    ),
}
"""The providers' usual formats, read without ``strptime`` (ten times slower) when the text has
exactly their digits: each field two digits (four for the year) gives what ``strptime`` gives
(its patterns try two digits first; a test holds each format to ``strptime``). Each pattern has
the six groups, ``S`` empty in the formats without seconds."""


def local_time(value: str, formats: Sequence[str], zone: ZoneInfo) -> datetime:
    """A provider's local wall-clock time (no zone given), in UTC.

    In the autumn hour that happens twice the first one is taken (``fold=0``); a time in the
    spring gap is read with the offset before the change.
    """
    text = value.strip()
    if _ISO_SECONDS in formats and _ISO_SECONDS_TEXT.fullmatch(text):  # the most common case
        when = _iso_seconds(text, zone)
        if when is not None:
            return when
    for fmt in formats:  # other usual formats, fast
        pattern = _FAST_FORMATS.get(fmt)
        if pattern is None or (match := pattern.fullmatch(text)) is None:
            continue
        when = _fast(match, zone)
        if when is not None:
            return when
        break  # 31 February and the like: strptime below says why
    if not any(_may_read(fmt, text) for fmt in formats):  # strptime would refuse it, slowly
        raise PayloadError(f"unreadable time {value!r}", reason="bad_timestamp")
    for fmt in formats:
        try:
            naive = datetime.strptime(text, fmt)  # naive: the zone is attached below
        except ValueError:
            continue
        return to_utc(naive.replace(tzinfo=zone))
    raise PayloadError(f"unreadable time {value!r}", reason="bad_timestamp")


_NUMERIC_DIRECTIVE = re.compile(r"%[dmyYHMS]")


@cache
def _characters(fmt: str) -> re.Pattern[str] | None:
    """For a format of numeric directives only (``%d.%m.%Y %H:%M:%S``): the pattern of the texts
    made only of characters ``strptime`` may read with it (digits, white space, its literals,
    in any case as ``strptime`` matches them); ``None`` for other formats."""
    literals = _NUMERIC_DIRECTIVE.sub("", fmt)
    if "%" in literals:
        return None
    return re.compile(r"[\d\s" + re.escape("".join(sorted(set(literals)))) + "]*", re.IGNORECASE)


def _may_read(fmt: str, text: str) -> bool:
    """``strptime(text, fmt)`` may succeed: ``False`` only for a text with a character none of
    ``fmt``'s parts reads (the notification of eCall's section 3.8: ``1Z.07.2014``)."""
    characters = _characters(fmt)
    return characters is None or characters.fullmatch(text) is not None


def _fast(match: re.Match[str], zone: ZoneInfo) -> datetime | None:
    """The time of a fast format's ``match`` in UTC, or ``None`` (see :func:`_iso_seconds`)."""
    year, month, day, hour, minute, second = match.group("Y", "m", "d", "H", "M", "S")
    second = second or "00"
    if match.string.isascii():  # its digits in ISO order, for fromisoformat
        return _iso_seconds(f"{year}-{month}-{day} {hour}:{minute}:{second}", zone)
    # other digits (\d is any Unicode digit), which int() reads and fromisoformat does not
    try:
        naive = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second))
    except ValueError:
        return None
    offset = zone.utcoffset(naive)
    if offset is not None:
        try:
            return naive.replace(tzinfo=UTC) - offset
        except OverflowError:
            pass
    return to_utc(naive.replace(tzinfo=zone))


def _iso_seconds(text: str, zone: ZoneInfo) -> datetime | None:
    """``YYYY-MM-DD HH:MM:SS`` (``fromisoformat``'s ASCII digits, read in C) as ``zone``'s wall
    clock, in UTC; ``None`` when it is no date (31 February and the like: strptime says why).

    ``to_utc(naive.replace(tzinfo=zone))`` in a third of the time (``astimezone`` and the
    keywords of ``replace`` are the slow parts): the same text read in UTC, minus the offset.
    try/except, not ``contextlib.suppress``: its three calls would cost as much as the rest.
    """
    try:
        naive = datetime.fromisoformat(text)
    except ValueError:
        return None
    offset = zone.utcoffset(naive)  # a naive time is read as the zone's wall clock
    if offset is not None:
        try:
            return datetime.fromisoformat(text + "+00:00") - offset
        except OverflowError:  # out of UTC's range: to_utc says so
            pass
    return to_utc(naive.replace(tzinfo=zone))


def to_utc(when: datetime) -> datetime:
    """An aware time in UTC; one that UTC cannot hold (year 1 in Paris) is a payload error."""
    try:
        return when.astimezone(UTC)
    except (OverflowError, ValueError) as exc:
        raise PayloadError(f"time out of range {when!r}", reason="bad_timestamp") from exc


def iso_time(value: str, zone: ZoneInfo = PARIS) -> datetime:
    """An ISO-8601 time in UTC; one without an offset is read as ``zone``'s wall clock."""
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise PayloadError(f"unreadable time {value!r}", reason="bad_timestamp") from exc
    return to_utc(when if when.tzinfo is not None else when.replace(tzinfo=zone))
