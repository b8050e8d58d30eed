"""How DMC writes dates: French local time (``2014-07-11 09:52:12``), with a zone abbreviation
(``2016-11-08 13:16:56 CET``: CET, CEST, UTC or GMT), ISO-8601 (``2019-03-28T09:42:47Z``), or
epoch milliseconds (``vxml_info`` start/end); and the UTC text ``details`` gives them as."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import orjson

from core.errors import PayloadError
from parsers.times import PARIS, iso_time, local_time

_LOCAL_FORMATS = ("%Y-%m-%d %H:%M:%S",)
_ZONES: Mapping[str, ZoneInfo] = {
    "CET": ZoneInfo("Etc/GMT-1"),  # POSIX sign: Etc/GMT-1 is UTC+01:00
    "CEST": ZoneInfo("Etc/GMT-2"),
    "UTC": ZoneInfo("UTC"),
    "GMT": ZoneInfo("UTC"),
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_MS = re.compile(r"[0-9]{1,15}")
_PLAIN_LOCAL = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}")
"""``2014-07-11 09:52:12``: no epoch, no zone name after its space, no ``T``."""


def read_time(value: str) -> datetime:
    """A DMC date: local (Paris), with a zone abbreviation, ISO-8601, or epoch milliseconds."""
    text = value.strip()
    if _PLAIN_LOCAL.fullmatch(text):  # the usual one: none of the tests below takes it
        return local_time(text, _LOCAL_FORMATS, PARIS)
    if _EPOCH_MS.fullmatch(text):
        return from_epoch_ms(text)
    stamp, _, zone_name = text.rpartition(" ")
    zone = _ZONES.get(zone_name.upper())
    if stamp and zone is not None:
        return local_time(stamp, _LOCAL_FORMATS, zone)
    if "T" in text:
        return iso_time(text, PARIS)
    return local_time(text, _LOCAL_FORMATS, PARIS)


class ReportTimes(dict[str, datetime]):
    """The dates of one report, each text read once (:func:`read_time`) when first looked up:
    a medium's date is usually its current status's, and the media of a report often share
    theirs. One per report, so that nothing outlives the request."""

    __slots__ = ()

    def __missing__(self, text: str) -> datetime:
        when = self[text] = read_time(text)
        return when


def from_epoch_ms(value: str) -> datetime:
    if not _EPOCH_MS.fullmatch(value.strip()):
        raise PayloadError(f"unreadable timestamp {value!r}", reason="bad_timestamp")
    try:
        return _EPOCH + timedelta(0, 0, 0, int(value))  # milliseconds, given by position
    except OverflowError as exc:
        raise PayloadError(f"timestamp out of range {value!r}", reason="bad_timestamp") from exc


def iso(when: datetime) -> str:
    """``when`` in UTC as ISO-8601 text, ``Z`` for UTC: ``2014-07-11T07:55:55Z``, microseconds
    when there are some (``isoformat()``'s text, written by orjson in a quarter of the time)."""
    if when.tzinfo is not UTC:  # the report's times are in UTC already
        when = when.astimezone(UTC)
    return orjson.dumps(when, option=orjson.OPT_UTC_Z)[1:-1].decode()
