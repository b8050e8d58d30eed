"""Provider times to UTC: local wall-clock times (Paris, Zurich) in a provider's formats, and
ISO-8601 times with or without an offset."""

from __future__ import annotations

import re
from collections.abc import Sequence
from contextlib import suppress
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from core.errors import PayloadError

PARIS = ZoneInfo("Europe/Paris")
ZURICH = ZoneInfo("Europe/Zurich")

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


def iso_time(value: str, zone: ZoneInfo = PARIS) -> datetime:
    """An ISO-8601 time in UTC; one without an offset is read as ``zone``'s wall clock."""
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise PayloadError(f"unreadable time {value!r}", reason="bad_timestamp") from exc
    return to_utc(when if when.tzinfo is not None else when.replace(tzinfo=zone))
