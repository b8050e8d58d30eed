"""sMsmode's pull source: the replies of ``responseList.do`` (seed 004, section 14), for an
account with no reply URL set (or to catch up on the replies its callbacks missed).

The cursor is ``since``: the end of the last window read. Each poll asks for the window from
``since`` less :data:`OVERLAP` (a reply listed a little after its reception time is still read)
to now, at most :data:`MAX_WINDOW` long (after a long stop the hub catches up window by window,
without waiting for the interval). The API reads its dates to the minute, Paris wall clock:
the window ends a minute past now. Replies read again in the overlap are not journaled again:
the cursor keeps the ``response_ID`` of every reply of the overlap (``seen``); one that comes
again after a crash between the journal and the cursor has the same event id, which the
pipeline worker marks duplicate (``HUB_DEDUP_WINDOW``). The first window starts at the first
poll, less the overlap.

sMsmode documents no rate limit: the interval is ``HUB_SMSMODE_PULL_INTERVAL``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from core.models import Provider
from core.vocabulary import JsonValue
from hub.pull.source import Advance, Ask, Cursor, Source, cursor_seen, cursor_time, unseen
from parsers.pull import smsmode as api
from parsers.pull.base import Item, Outcome, Page

OVERLAP = timedelta(minutes=10)
"""How far back each window starts before the end of the last one."""
MAX_WINDOW = timedelta(days=1)
"""The widest window asked at once."""
_MINUTE = timedelta(minutes=1)


class SmsmodeSource(Source):
    provider = Provider.SMSMODE
    methods = dict(api.READERS)  # noqa: RUF012 (read only)

    def __init__(self, *, token: str, base_url: str, interval: float) -> None:
        super().__init__(base_url=base_url, interval=interval)
        self._token = token

    def ask(self, cursor: Cursor, now: datetime) -> Ask:
        start = _time(cursor.get("since"), now) - OVERLAP
        until = min(now, start + MAX_WINDOW)
        end = until + _MINUTE
        if api.query_time(start) >= api.query_time(end):  # the autumn hour, read twice
            start -= timedelta(hours=1)
        call = api.response_list_call(self._token, start, end)
        return Ask(api.RESPONSE_LIST, call, api.read_response_list, until, api.read_status)

    def fresh(self, cursor: Cursor, page: Page) -> Sequence[Item]:
        return unseen(cursor, page)

    def advance(self, cursor: Cursor, ask: Ask, page: Page, now: datetime) -> Advance:
        if page.outcome not in (Outcome.ITEMS, Outcome.NOTHING_NEW) or ask.until is None:
            return Advance(cursor)
        since = ask.until
        keep_from = since - OVERLAP - timedelta(hours=1)  # the hour a fold adds
        seen = {k: t for k, t in cursor_seen(cursor).items() if _time(t, now) >= keep_from}
        for item in page.items:
            when = item.time or now
            if when >= keep_from:
                seen.setdefault(item.key, when.isoformat())
        fresh: Cursor = {"since": since.isoformat(), "seen": dict(sorted(seen.items()))}
        return Advance(fresh, again=since < now - OVERLAP)

    @staticmethod
    def describe(cursor: Cursor) -> str:
        since = cursor.get("since")
        if not isinstance(since, str):
            return "no window read yet"
        remembered = len(cursor_seen(cursor))
        return f"replies read up to {since[:19]}Z, {remembered} remembered for the overlap"


def _time(value: JsonValue, default: datetime) -> datetime:
    return cursor_time(value) or default
