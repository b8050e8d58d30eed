"""eCampaign's pull source: the replies and the blacklist entries of each configured channel
(``getResponses``, ``getBlacklist``: seed 000, p.41-43), which eCampaign never pushes.

One poll asks one list; the source goes through every configured channel's two lists in turn
(``sms/getResponses``, ``sms/getBlacklist``, ``fax/getResponses``...), one after the other
without waiting (eCampaign documents no rate limit), then waits the interval
(``HUB_ECAMPAIGN_PULL_INTERVAL``) before the next round. A list eCampaign refuses (a return
code) is asked again at its next turn, the others not held back by it; no answer at all (a
timeout, an HTTP 5xx) asks the same list again after the back-off.

The methods take no period and eCampaign documents no way to acknowledge an entry: each answer
is the whole list. Entries have no id: an entry's key is the hash of its content
(``parsers.pull.ecampaign.content_key``). The cursor keeps, per list, a high-water mark (the
newest entry's date, ``DATE_HEURE``) and the keys of the entries dated from :data:`OVERLAP`
before the mark (and the hour a change to winter time repeats): an entry is new when it is
dated after the mark, or near the mark with a key not kept. An entry without a readable date
cannot be placed: the keys of those listed last time are kept, as long as the list holds them.
An entry read again after a crash between the journal and the cursor has the same event id
(made of its content), which the pipeline worker marks duplicate.

The first poll of a list journals every entry it holds: the blacklist a customer turns the
source on for is the one eCampaign has gathered so far.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from core.models import Channel, Provider
from core.vocabulary import JsonValue
from hub.pull.source import Advance, Ask, Cursor, Source, cursor_seen, cursor_time
from parsers.pull import ecampaign as api
from parsers.pull.base import Item, Outcome, Page

OVERLAP = timedelta(minutes=10)
"""How far below the mark entries are still compared by key (one listed a little late)."""
_FOLD = timedelta(hours=1)
"""The hour a change to winter time repeats (the dates are Paris wall clock)."""
_BUILD = {"getResponses": api.get_responses_call, "getBlacklist": api.get_blacklist_call}
_READ = {"getResponses": api.read_get_responses, "getBlacklist": api.read_get_blacklist}


class EcampaignSource(Source):
    provider = Provider.ECAMPAIGN
    methods = dict(api.READERS)  # noqa: RUF012 (read only)

    def __init__(
        self,
        *,
        user: str,
        password: str,
        md5: bool = False,
        channels: Sequence[Channel] = api.CHANNELS,
        base_url: str,
        interval: float,
    ) -> None:
        super().__init__(base_url=base_url, interval=interval)
        self._user, self._password, self._md5 = user, password, md5
        self.lists = [(c, m) for c in channels for m in api.METHODS]
        """The lists polled in turn: (channel, method)."""

    @property
    def round(self) -> int:
        """One poll per list."""
        return len(self.lists)

    def _current(self, cursor: Cursor) -> int:
        names = [api.callback(c, m) for c, m in self.lists]
        turn = cursor.get("next")
        return names.index(turn) if isinstance(turn, str) and turn in names else 0

    def ask(self, cursor: Cursor, now: datetime) -> Ask:
        channel, method = self.lists[self._current(cursor)]
        call = _BUILD[method](channel, self._user, self._password, md5=self._md5)
        return Ask(api.callback(channel, method), call, _READ[method], status=api.read_status)

    def fresh(self, cursor: Cursor, page: Page) -> Sequence[Item]:
        channel, method = self.lists[self._current(cursor)]
        mark = _mark_of(cursor, api.callback(channel, method))
        high = cursor_time(mark.get("mark"))
        seen, untimed = set(cursor_seen(mark)), set(_keys(mark, "untimed"))
        found: list[Item] = []
        taken: set[str] = set()
        for item in page.items:
            if item.time is None:
                old = item.key in untimed
            elif high is None:
                old = False  # the list's first read: every entry it holds
            else:
                old = item.time < _low(high) or item.key in seen
            if not old and item.key not in taken:
                taken.add(item.key)
                found.append(item)
        return found

    def advance(self, cursor: Cursor, ask: Ask, page: Page, now: datetime) -> Advance:
        turn = self._current(cursor)
        following = (turn + 1) % len(self.lists)
        moved: Cursor = dict(cursor)
        moved["next"] = api.callback(*self.lists[following])
        if page.outcome in (Outcome.ITEMS, Outcome.NOTHING_NEW):
            marks: dict[str, JsonValue] = dict(_marks(cursor).items())
            marks[ask.method] = _moved(_mark_of(cursor, ask.method), page)
            moved["marks"] = marks
        # the rest of the round at once; a failure waits its back-off, then the next list
        return Advance(moved, again=following != 0)

    @staticmethod
    def describe(cursor: Cursor) -> str:
        marks = _marks(cursor)
        if not marks:
            return "no list read yet"
        newest = max((v for m in marks.values() if isinstance(v := m.get("mark"), str)), default="")
        shown = f", newest entry {str(newest)[:19]}Z" if newest else ""
        return f"{len(marks)} lists read{shown}, next {cursor.get('next', '-')}"


def _moved(mark: dict[str, JsonValue], page: Page) -> dict[str, JsonValue]:
    """A list's mark once ``page`` is durable: the newest date, the keys near it, the keys of
    the undated entries listed now."""
    high = cursor_time(mark.get("mark"))
    times = [i.time for i in page.items if i.time is not None]
    if high is not None:
        times.append(high)
    high = max(times, default=None)
    seen: dict[str, str] = {}
    if high is not None:
        low = _low(high)
        seen = {k: t for k, t in cursor_seen(mark).items() if (cursor_time(t) or high) >= low}
        for item in page.items:
            if item.time is not None and item.time >= low:
                seen.setdefault(item.key, item.time.isoformat())
    untimed = sorted({i.key for i in page.items if i.time is None})
    return {
        "mark": None if high is None else high.isoformat(),
        "seen": dict(sorted(seen.items())),
        "untimed": list(untimed),
    }


def _low(high: datetime) -> datetime:
    return high - OVERLAP - _FOLD


def _marks(cursor: Cursor) -> dict[str, dict[str, JsonValue]]:
    marks = cursor.get("marks")
    if not isinstance(marks, dict):
        return {}
    return {k: v for k, v in marks.items() if isinstance(v, dict)}


def _mark_of(cursor: Cursor, name: str) -> dict[str, JsonValue]:
    return _marks(cursor).get(name, {})


def _keys(mark: dict[str, JsonValue], name: str) -> list[str]:
    value = mark.get(name)
    if isinstance(value, list):
        return [k for k in value if isinstance(k, str)]
    return []
