"""What a pull source is: the one interface the poller (``hub.pull.poller``) drives.

A source is one provider's polling, with its cursor policy. The poller does the rest for every
source alike: the lock, the HTTP exchange, the journal, the quarantine, the metrics, the
schedule. One poll goes:

1. :meth:`Source.ask` gives the request to send now, from the cursor (an :class:`Ask`: the
   method's name, the :class:`parsers.pull.base.Call`, the pure reader of its answer);
2. the answer is read (:class:`parsers.pull.base.Page`); :meth:`Source.fresh` picks the items
   not journaled yet (an overlapping window reads some again); their events are journaled and
   synced;
3. only then :meth:`Source.settle` gives the requests that acknowledge them at the provider
   (eCall's ``DeleteMessage``), sent in order;
4. :meth:`Source.advance` gives the new cursor (and whether to ask again at once), which the
   poller writes to disk, after the events are durable: a crash before it repeats a poll (the
   same event ids, which the pipeline worker marks duplicate), never skips one.

How each provider fits:

- sMsmode (``hub.pull.smsmode``): a date window overlapping the last one; ``fresh`` by
  ``response_ID`` remembered for the overlap; the cursor is the window's end;
- eCall's buffer: ``ask`` is always ``GetNextMessage``; ``settle`` is ``DeleteMessage`` of the
  item read; ``advance`` asks again at once while the buffer was not empty (``Page.more``);
- eCampaign: ``ask`` from a high-water mark on the items' date; ``fresh`` by content hash (the
  key) among the items at the mark; ``advance`` moves the mark to the newest item;
- DMC: a date window, ``minimum`` = 60 s (one call a minute, SupervisionWS); on
  ``request_refused`` ``advance`` narrows the window.

The cursor is a JSON object of the source's own (the poller only stores it). Every method is
pure: no I/O, the time given.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from core.models import Provider, RawRequest
from core.vocabulary import JsonValue
from parsers.pull.base import Call, Item, Page, http_status

Cursor = dict[str, JsonValue]
Reader = Callable[[RawRequest], Page]
StatusReader = Callable[[int], Page | None]


@dataclass(frozen=True, slots=True)
class Ask:
    """One request of a source, and how to read its answer."""

    method: str
    """The polling method's name (``responseList``): the answer's ``RawRequest.callback``, the
    quarantine's callback."""
    call: Call
    read: Reader
    until: datetime | None = None
    """For a date window, the time up to which this request reads (the source's own)."""
    status: StatusReader = http_status
    """What an HTTP status says before the body is read (the pull module's ``read_status``):
    ``None``, read the body."""
    query: bytes | None = None
    """What is kept of the request (the answer's ``RawRequest.query``, the quarantine's) when
    its parameters are in its body (DMC's SOAP call: ``parsers.pull.dmc.request_query``);
    ``None``: the call's query and form fields without the secrets."""


@dataclass(frozen=True, slots=True)
class Advance:
    cursor: Cursor
    again: bool = False
    """There is more to read now (a window that had to stop short of now, a buffer not empty):
    the next poll comes as soon as the provider allows (``Source.minimum``)."""


class Source(ABC):
    """One provider's polling. Subclasses set the class attributes and :meth:`ask`."""

    provider: Provider
    methods: dict[str, Reader]
    """Every polling method's reader by name (``hub quarantine replay`` reads a quarantined
    answer again with it)."""

    def __init__(self, *, base_url: str, interval: float, minimum: float = 0.0) -> None:
        self.base_url = base_url.rstrip("/")
        """The API's base address (``HUB_<PROVIDER>_API_URL``); ``Call.path`` is under it."""
        self.interval = max(interval, minimum)
        """Seconds between two polls when nothing more waits."""
        self.minimum = minimum
        """Seconds between two requests at least: the provider's limit (0: none documented)."""

    @property
    def name(self) -> str:
        return self.provider.value

    @property
    def round(self) -> int:
        """The polls that read everything once (``hub pull once`` makes them all): one, or one
        per list for a source that reads several in turn (eCampaign)."""
        return 1

    @abstractmethod
    def ask(self, cursor: Cursor, now: datetime) -> Ask:
        """The request to send now."""

    def fresh(self, cursor: Cursor, page: Page) -> Sequence[Item]:
        """The items of ``page`` to journal (by default all of them: the worker's deduplication
        is there for the rest)."""
        return page.items

    def settle(self, cursor: Cursor, page: Page) -> Sequence[Ask]:
        """Requests to send once the events of ``page`` are durable (none by default)."""
        return ()

    def advance(self, cursor: Cursor, ask: Ask, page: Page, now: datetime) -> Advance:
        """The cursor once ``page`` (any outcome) is dealt with (unchanged by default)."""
        return Advance(cursor, again=page.more)

    @staticmethod
    def describe(cursor: Cursor) -> str:
        """The cursor in a few words, for ``hub pull status``."""
        return ", ".join(f"{k}={v}" for k, v in cursor.items() if isinstance(v, str)) or "-"


def cursor_time(value: JsonValue) -> datetime | None:
    """A time a cursor keeps (ISO-8601), or None where it keeps none or something else (a
    cursor file from elsewhere: a poll from the start rather than a crash)."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def cursor_seen(cursor: Mapping[str, JsonValue]) -> dict[str, str]:
    """A cursor's ``seen`` map (item key: its time), anything else it holds there left out."""
    seen = cursor.get("seen")
    if not isinstance(seen, dict):
        return {}
    return {k: v for k, v in seen.items() if isinstance(v, str)}


def unseen(cursor: Mapping[str, JsonValue], page: Page) -> list[Item]:
    """The items of ``page`` whose key the cursor's ``seen`` map does not hold, each key once:
    :meth:`Source.fresh` for a date window that overlaps the last one (sMsmode, DMC)."""
    seen = set(cursor_seen(cursor))
    found = []
    for item in page.items:
        if item.key not in seen:
            seen.add(item.key)
            found.append(item)
    return found
