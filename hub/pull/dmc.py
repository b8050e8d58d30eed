"""DMC's pull source: the STOPs and SMS replies of ``getResponsesSMS`` (seed 001, 2.4.7), as DMC
classifies them, when the push was missed or is not set up.

The whole SupervisionWS family is limited to one call a minute (2.4: a second call within the
minute gets an exception): the source's :attr:`~hub.pull.source.Source.minimum` is 60 s, which
the poller waits out between two calls whatever else happens (a restart, ``hub pull once``: the
last call's time is in the state on disk), and ``HUB_DMC_PULL_INTERVAL`` cannot go under it.
One call a minute asks for every reply (``stopOnly`` false: the STOPs are replies too, and a
second call for the STOPs alone would halve the rate); ``HUB_DMC_STOP_ONLY`` asks for the STOPs
only, for an account without the replies option ("si l'option a été souscrite"), and marks them
``details.stop``.

The cursor is ``since``: the end of the last period read. Each call asks for the period from
``since`` less :data:`OVERLAP` (a reply listed a little after its ``callDate``) to now, at most
``width`` long (:data:`MAX_WINDOW` unless narrowed): after a long stop the source catches up
period by period, one a minute. DMC reads the dates as Paris wall clock: in the hour a change to
winter time repeats, a period whose beginning would come after its end starts an hour earlier.
The replies of the overlap read again are not journaled again: the cursor keeps their event
ids (``seen``); one read again after a crash between the journal and the cursor has the same
event id (the push's, made of the broadcast, the contact and the text), which the pipeline
worker marks duplicate.

A period DMC refuses (``parametres_inconsistants``, ``invalid_parameter``: the document gives
no widest period, these are the faults a period too wide can get) halves the width, down to
:data:`MIN_WINDOW`, and the next call (a minute later) asks the narrower one; once the source
has caught up with now the width is forgotten. The once-a-minute fault (another client of the
account called within the minute) waits the minute it asks for.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from core.models import Provider
from core.vocabulary import JsonValue
from hub.pull.source import Advance, Ask, Cursor, Source, cursor_seen, cursor_time, unseen
from parsers.pull import dmc as api
from parsers.pull.base import Item, Outcome, Page
from parsers.times import PARIS

METHOD = "getResponsesSMS"
OVERLAP = timedelta(minutes=10)
"""How far back each period starts before the end of the last one."""
MAX_WINDOW = timedelta(days=1)
"""The widest period asked at once."""
MIN_WINDOW = timedelta(minutes=10)
"""The narrowest a refused period is made (catching up five minutes a call at least)."""
NARROWING = frozenset({"parametres_inconsistants", "invalid_parameter"})
"""The faults that may say the period is too wide."""
_FOLD = timedelta(hours=1)
"""The hour a change to winter time repeats (DMC's dates are Paris wall clock)."""


class DmcSource(Source):
    provider = Provider.DMC
    methods = dict(api.READERS)  # noqa: RUF012 (read only)

    def __init__(
        self,
        *,
        service_id: str,
        service_password: str,
        space_id: str,
        stop_only: bool = False,
        base_url: str,
        interval: float,
    ) -> None:
        super().__init__(base_url=base_url, interval=interval, minimum=api.RATE_LIMIT_SECONDS)
        self._service = (service_id, service_password, space_id)
        self.stop_only = stop_only

    def ask(self, cursor: Cursor, now: datetime) -> Ask:
        width = _width(cursor)
        start = _time(cursor.get("since"), now) - min(OVERLAP, width / 2)
        until = min(now, start + width)
        if _wall(start) >= _wall(until):  # the autumn hour, read twice: a period that goes on
            start -= _FOLD
        call = api.get_responses_sms_call(*self._service, start, until, stop_only=self.stop_only)
        query = api.request_query(start, until, stop_only=self.stop_only)
        return Ask(METHOD, call, api.read_get_responses_sms, until, api.read_status, query)

    def fresh(self, cursor: Cursor, page: Page) -> Sequence[Item]:
        return unseen(cursor, page)

    def advance(self, cursor: Cursor, ask: Ask, page: Page, now: datetime) -> Advance:
        if page.outcome is Outcome.REQUEST_REFUSED and page.reason in NARROWING:
            width = _width(cursor)
            narrower = max(MIN_WINDOW, width / 2)
            if narrower == width:
                return Advance(cursor)  # as narrow as it goes: the back-off, and a person
            return Advance({**cursor, "width": narrower.total_seconds()}, again=True)
        if page.outcome not in (Outcome.ITEMS, Outcome.NOTHING_NEW) or ask.until is None:
            return Advance(cursor)
        since = ask.until
        keep_from = since - OVERLAP - _FOLD
        seen = {k: t for k, t in cursor_seen(cursor).items() if _time(t, now) >= keep_from}
        for item in page.items:
            when = item.time or now
            if when >= keep_from:
                seen.setdefault(item.key, when.isoformat())
        behind = since < now - OVERLAP
        moved: Cursor = {"since": since.isoformat(), "seen": dict(sorted(seen.items()))}
        if behind and "width" in cursor:
            moved["width"] = cursor["width"]  # narrowed while catching up: still
        return Advance(moved, again=behind)

    @staticmethod
    def describe(cursor: Cursor) -> str:
        since = cursor.get("since")
        if not isinstance(since, str):
            return "no period read yet"
        narrowed = cursor.get("width")
        width = f", periods narrowed to {narrowed:.0f} s" if isinstance(narrowed, float) else ""
        return f"replies read up to {since[:19]}Z, {len(cursor_seen(cursor))} remembered{width}"


def _wall(when: datetime) -> datetime:
    """Paris wall clock, as DMC reads the period's dates."""
    return when.astimezone(PARIS).replace(tzinfo=None)


def _width(cursor: Cursor) -> timedelta:
    value = cursor.get("width")
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return max(MIN_WINDOW, min(MAX_WINDOW, timedelta(seconds=value)))
    return MAX_WINDOW


def _time(value: JsonValue, default: datetime) -> datetime:
    return cursor_time(value) or default
