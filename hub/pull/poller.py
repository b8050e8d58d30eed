"""One pull source's polls: one poll (:meth:`Poller.poll`) and the loop of them (:meth:`run`).

A poll, under the source's lock (``hub.pull.state``): the state read again; the provider's
minimum spacing waited out; the source's request sent (``hub.pull.http``); the answer read by
the source's pure reader. Then, by what it says:

- items: the new ones (``Source.fresh``) journaled as callbacks' events are (``hub.intake``),
  waiting for the sync; then the source's settling requests (eCall's delete); then the cursor
  moved (``Source.advance``) and the state written. A crash anywhere before that repeats the
  poll: the same event ids, marked duplicate by the pipeline worker;
- an answer no reader understands: its bytes quarantined (as a callback's are, with the
  request's query without secrets and the answer's headers without cookies and credentials,
  ``QuarantineEntry.of``; the same bytes again are counted, not kept twice), the cursor kept,
  the source backs off;
- an error answer (``parsers.pull.base.Outcome``), no answer at all, a journal that cannot take
  the events: the cursor kept, the source backs off. A request the provider refuses as asked
  (``request_refused``) that the source will ask differently (``Source.advance`` moved the
  cursor and says ``again``: DMC's narrower period) is asked as soon as the provider allows.

Back-off: from the interval (ten times it when credentials are refused), doubling at each
failure in a row up to :data:`MAX_BACKOFF`, with jitter (between half and all of it), never
shorter than what the provider asks (``retry_after``) nor than its minimum spacing. Each poll
is counted (``hub_pull_*``); log lines name the source, the outcome and the reason, never a
secret, a number or a text.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp

from core.errors import HubError, PayloadError, SinkUnavailable
from core.models import Event, RawRequest, utc_now
from hub import intake
from hub.pull import http, state
from hub.pull.source import Ask, Source
from hub.pull.state import State
from parsers.pull.base import Item, Outcome, Page, http_status
from sinks.journal import Journal, QuarantineEntry
from sinks.metrics import Metrics

log = logging.getLogger(__name__)

MAX_BACKOFF = 3600.0
"""Seconds between two polls at most while they fail (or the interval, when longer)."""
REFUSED_FACTOR = 10
"""Refused credentials back off from ten intervals: a person must change them."""
UNREADABLE = "unreadable"
JOURNAL_UNAVAILABLE = "journal_unavailable"
_SUCCESS = {Outcome.ITEMS.value, Outcome.NOTHING_NEW.value}


@dataclass
class Polled:
    """What one poll did."""

    outcome: str
    reason: str = ""
    events: list[Event] = field(default_factory=list)
    """The events journaled by this poll (new items only)."""
    items: int = 0
    """The new items journaled."""
    quarantined: int | None = None
    delay: float = 0.0
    """Seconds to the next poll."""
    state: State = field(default_factory=State)
    again: bool = False
    retry_after: float | None = None

    @property
    def succeeded(self) -> bool:
        return self.outcome in _SUCCESS


@dataclass
class _Read:
    outcome: str
    reason: str = ""
    page: Page | None = None
    raw: RawRequest | None = None
    answer: http.Answer | None = None
    retry_after: float | None = None


class Poller:
    """Polls one source into ``journal``; ``notify`` tells the pipeline worker (in this loop)
    that events were appended."""

    def __init__(
        self,
        source: Source,
        *,
        journal: Journal,
        metrics: Metrics,
        session: aiohttp.ClientSession,
        data_dir: Path,
        notify: Callable[[], None] = lambda: None,
        jitter: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.source, self.journal, self.metrics = source, journal, metrics
        self.session, self.data_dir, self.notify, self.jitter = session, data_dir, notify, jitter
        self.clock, self.sleep = clock, sleep
        """The epoch seconds a poll's request is sent at (the provider's minimum spacing, the
        source's ``now``), and how the spacing is waited out: a test gives its own (a fake
        provider's clock, a sleep that moves it) to check a minute's spacing without waiting it."""
        loaded = state.load(data_dir, source.name)
        self.last_success: float | None = _epoch(loaded.last_success)
        """Epoch seconds of the last successful poll (``hub_pull_lag_seconds``)."""

    async def run(self) -> None:
        """Polls for ever: first when the state on disk says (a back-off survives a restart),
        then at the delay each poll gives."""
        delay = _until(state.load(self.data_dir, self.source.name).next_poll, self.source)
        while True:
            await asyncio.sleep(delay)
            try:
                delay = (await self.poll()).delay
            except Exception as exc:  # a bug of ours: said, and tried again later
                log.error("%s: poll failed: %s", self.source.name, intake.where(exc))
                delay = min(MAX_BACKOFF, self.source.interval * REFUSED_FACTOR)

    async def poll(self) -> Polled:
        """One poll (see the module's docstring)."""
        name = self.source.name
        async with state.locked(self.data_dir, name):
            current = await asyncio.to_thread(state.load, self.data_dir, name)
            self.last_success = _epoch(current.last_success)  # ``hub pull once``'s counts too
            wait = current.last_call + self.source.minimum - self.clock()
            if wait > 0:
                await self.sleep(wait)  # the provider's minimum spacing between calls
            current.last_call = self.clock()
            now = datetime.fromtimestamp(current.last_call, UTC)
            ask = self.source.ask(current.cursor, now)
            polled = await self._exchange(ask, current, now)
            polled.delay = self._delay(polled, current)
            current.next_poll = (utc_now() + timedelta(seconds=polled.delay)).isoformat()
            # written and synced off the loop: a stalled disk must not hold the callbacks
            await asyncio.to_thread(state.save, self.data_dir, name, current)
            polled.state = current
        self._count(polled)
        return polled

    async def _exchange(self, ask: Ask, current: State, now: datetime) -> Polled:
        read = await self._read(ask)
        current.last_poll = utc_now().isoformat()
        page = read.page
        if page is None:
            return await self._failed(read, current)
        if page.outcome.value not in _SUCCESS:  # the source may ask differently next time
            advance = self.source.advance(current.cursor, ask, page, now)
            current.cursor = advance.cursor
            failed = await self._failed(read, current)
            failed.again = advance.again
            return failed
        assert read.raw is not None
        items = self.source.fresh(current.cursor, page)
        events = [e for item in items for e in item.events]
        if events:
            try:
                await intake.append(self.journal, read.raw, events)
            except PayloadError as exc:  # an event the journal cannot write: the input's
                unreadable = _Read(UNREADABLE, exc.reason, None, read.raw, read.answer)
                return await self._failed(unreadable, current)
            except SinkUnavailable as exc:
                return await self._failed(_Read(JOURNAL_UNAVAILABLE, exc.reason), current)
            self.notify()
        unsettled = await self._settle(self.source.settle(current.cursor, page))
        if unsettled is not None:
            return await self._failed(unsettled, current)
        advance = self.source.advance(current.cursor, ask, page, now)
        current.cursor = advance.cursor
        current.outcome, current.reason = page.outcome.value, page.reason
        current.failures = 0
        current.last_success = current.last_poll
        current.unreadable = ""
        self.last_success = time.time()
        current.items += len(items)
        current.newest_item = _newest(current.newest_item, items)
        return Polled(page.outcome.value, page.reason, events, len(items), again=advance.again)

    async def _read(self, ask: Ask) -> _Read:
        """The answer to ``ask``: what its HTTP status says when the pull module's
        ``read_status`` says it (``Ask.status``), else its body as the reader reads it (an
        unreadable 2xx body is to be quarantined; a non-2xx one that holds no error answer is
        what the common rule, ``parsers.pull.base.http_status``, says of its status)."""
        try:
            answer = await http.send(self.session, self.source.base_url, ask.call)
        except http.Unreachable as exc:
            return _Read(Outcome.RETRY_LATER.value, str(exc))
        raw = RawRequest(
            provider=self.source.provider,
            callback=ask.method,
            method=ask.call.method,
            query=http.kept_query(ask.call) if ask.query is None else ask.query,
            body=answer.body,
            content_type=answer.content_type,
            received_at=utc_now(),
        )
        said = ask.status(answer.status)
        if said is not None:  # the status says it all (a 401, a proxy's 503 page)
            return _Read(said.outcome.value, said.reason, retry_after=_retry_after(answer, said))
        success = 200 <= answer.status < 300
        try:
            page = _parse(ask, raw)
        except PayloadError as exc:
            if success:
                return _Read(UNREADABLE, exc.reason, None, raw, answer)
            page = None
        if not success and (page is None or page.outcome.value in _SUCCESS):
            # a body to read (DMC's faults come with a 500) that holds no error answer: what
            # the status says by the common rule
            said = http_status(answer.status) or Page(Outcome.RETRY_LATER)
            return _Read(said.outcome.value, said.reason, retry_after=_retry_after(answer, said))
        assert page is not None
        return _Read(page.outcome.value, page.reason, page, raw, answer)

    async def _settle(self, asks: Sequence[Ask]) -> _Read | None:
        """Sends the settling requests in order; the first that fails, or None."""
        for ask in asks:
            read = await self._read(ask)
            if read.page is None or read.outcome not in _SUCCESS:
                return _Read(read.outcome, f"settle_{read.reason or ask.method}")
        return None

    async def _failed(self, read: _Read, current: State) -> Polled:
        retry_after = read.retry_after or (read.page.retry_after if read.page else None)
        polled = Polled(read.outcome, read.reason, retry_after=retry_after)
        if read.outcome == UNREADABLE and read.raw is not None:
            polled.quarantined = await self._quarantine(read, current)
            if polled.quarantined == -1:
                polled = Polled(JOURNAL_UNAVAILABLE, "quarantine")
        current.outcome, current.reason = polled.outcome, polled.reason
        current.failures += 1
        level = logging.ERROR if read.outcome == Outcome.CREDENTIALS_REFUSED else logging.WARNING
        log.log(level, "%s: poll failed (%s: %s)", self.source.name, polled.outcome, polled.reason)
        return polled

    async def _quarantine(self, read: _Read, current: State) -> int | None:
        """Keeps an answer no reader understands: its number, None when the same bytes were
        kept last time already, -1 when the journal could not keep them."""
        raw = read.raw
        assert raw is not None
        digest = hashlib.sha256(raw.body).hexdigest()
        if current.unreadable == digest:
            return None
        headers = dict(read.answer.headers) if read.answer else {}
        headers["X-Hub-Pull-Status"] = str(read.answer.status) if read.answer else ""
        try:
            number = await self.journal.quarantine(QuarantineEntry.of(raw, read.reason, headers))
        except SinkUnavailable as exc:
            log.error("%s: could not quarantine an answer (%s)", self.source.name, exc.reason)
            return -1
        current.unreadable = digest
        log.warning("%s: an answer not understood, quarantined as #%d", self.source.name, number)
        return number

    def _delay(self, polled: Polled, current: State) -> float:
        source = self.source
        if polled.succeeded:
            delay = source.minimum if polled.again else source.interval
        elif polled.again and polled.outcome == Outcome.REQUEST_REFUSED:
            delay = source.minimum  # the source asks differently now (a narrower period)
        else:
            factor = REFUSED_FACTOR if polled.outcome == Outcome.CREDENTIALS_REFUSED else 1
            ceiling = max(MAX_BACKOFF, source.interval)
            delay = min(ceiling, source.interval * factor * 2 ** min(current.failures - 1, 32))
            delay *= 0.5 + 0.5 * self.jitter()
            if polled.retry_after:
                delay = max(delay, polled.retry_after)
        return max(delay, source.minimum)

    def _count(self, polled: Polled) -> None:
        name, metrics = self.source.name, self.metrics
        metrics.pull_polls(name, polled.outcome).inc()
        if not polled.succeeded:
            metrics.pull_errors(name, polled.outcome, polled.reason).inc()
        if polled.items:
            metrics.pull_items(name).inc(polled.items)
        newest = _epoch(polled.state.newest_item)
        if newest is not None:
            metrics.pull_newest_item(name).set(newest)


def _parse(ask: Ask, raw: RawRequest) -> Page:
    """``ask.read(raw)``; anything it raises but a :class:`HubError` is the answer's fault."""
    try:
        return ask.read(raw)
    except HubError:
        raise
    except Exception as exc:
        log.error("%s/%s: reader error: %s", raw.provider.value, raw.callback, intake.where(exc))
        raise PayloadError("reader error", reason=intake.PARSER_ERROR) from exc


def _retry_after(answer: http.Answer, said: Page) -> float | None:
    """``Retry-After`` in seconds (its date form is not read: the back-off stands in), else what
    the status's page says."""
    value = next((v for k, v in answer.headers.items() if k.lower() == "retry-after"), "")
    return float(value) if value.strip().isdigit() else said.retry_after


def _newest(known: str | None, items: Sequence[Item]) -> str | None:
    times = [i.time for i in items if i.time is not None]
    if known is not None:
        times.append(datetime.fromisoformat(known))
    return max(times).isoformat() if times else None


def _epoch(value: str | None) -> float | None:
    return None if value is None else datetime.fromisoformat(value).timestamp()


def _until(next_poll: str | None, source: Source) -> float:
    """Seconds to the next poll the state on disk says (never more than the longest back-off)."""
    if next_poll is None:
        return 0.0
    seconds = (datetime.fromisoformat(next_poll) - utc_now()).total_seconds()
    return min(max(0.0, seconds), max(MAX_BACKOFF, source.interval))
