"""A fake of sMsmode's ``responseList.do`` (seed 004, section 14), as the document shows it.

``GET /http/1.6/responseList.do?accessToken=...`` with either ``startDate``/``endDate``
(``ddMMyyyy-HH:mm``, Paris wall clock: the replies received from the start's minute to before
the end's, as the document's "January" sample, ``01012014-00:00`` to ``01022014-00:00``,
reads), or ``start``/``offset`` pagination from the most recent (by default 0 and 50). The
answer: one line per reply, ``response_ID | reception_date | from | text | to | message_ID``,
ISO-8859-15 (the HTTP API's charset; the document names no content type: ``text/plain``);
nothing for no reply. Errors as the HTTP API writes them, ``code_retour | description``:
``32 | Erreur d'authentification`` for a token that is not the account's,
``35 | Paramètre incorrect (...)`` for a missing ``accessToken``, one date without the other, dates
with pagination, or a date it cannot read. sMsmode documents no limit on the window's width
nor on the rate of calls: the fake has none either.

:attr:`FakeSmsmode.answers` queues answers given instead of the next ones (a failure: ``31 |
Erreur interne``, an HTTP 503, a page of HTML); :attr:`FakeSmsmode.calls` records each
request's query. Served as every fake is (``tests.fakes.base``: ``Running`` from a thread of
its own, for a hub in a process of its own); its state is safe to change from the test's thread.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import ClassVar
from zoneinfo import ZoneInfo

from aiohttp import web

from tests.fakes.base import Fake

PARIS = ZoneInfo("Europe/Paris")
BASE_PATH = "/http/1.6"
PATH = f"{BASE_PATH}/responseList.do"
TOKEN = "fake-smsmode-token-0123456789abcd"
"""The account's API key (32 characters, as sMsmode's)."""
AUTHENTICATION = "32 | Erreur d'authentification"
PARAMETER = '35 | Paramètre incorrect ("accessToken" est obligatoire)'
CONTENT_TYPE = "text/plain; charset=ISO-8859-15"
_DATE = "%d%m%Y-%H:%M"


@dataclass(frozen=True)
class Reply:
    response_id: str
    received: datetime
    """Aware."""
    sender: str = "33601020304"
    text: str = "bonjour"
    to: str = "36034"
    message_id: str = "abcd1234"

    def line(self) -> str:
        when = self.received.astimezone(PARIS).strftime(_DATE)
        return f"{self.response_id} | {when} | {self.sender} | {self.text} | {self.to} | " + (
            self.message_id
        )


@dataclass
class FakeSmsmode(Fake[dict[str, str]]):
    base_path: ClassVar[str] = BASE_PATH
    token: str = TOKEN
    replies: list[Reply] = field(default_factory=list)
    answers: list[tuple[int, bytes, dict[str, str]]] = field(default_factory=list)
    """(status, body, headers) given instead of the next answers, first first."""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, *replies: Reply) -> None:
        with self._lock:
            self.replies.extend(replies)

    def fail(self, *answers: tuple[int, bytes] | tuple[int, bytes, dict[str, str]]) -> None:
        """Answers to give instead of the next ones: (status, body) or (status, body,
        headers)."""
        with self._lock:
            self.answers.extend((a[0], a[1], a[2] if len(a) > 2 else {}) for a in answers)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(PATH, self._response_list)
        return app

    async def _response_list(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        with self._lock:
            self.calls.append(query)
            if self.answers:
                status, body, headers = self.answers.pop(0)
                return web.Response(status=status, body=body, headers=headers)
            replies = list(self.replies)
        return _text(self._answer(query, replies))

    def _answer(self, query: dict[str, str], replies: list[Reply]) -> str:
        token = query.get("accessToken")
        if not token:
            return PARAMETER
        if token != self.token:
            return AUTHENTICATION
        start, end = query.get("startDate"), query.get("endDate")
        if (start is None) != (end is None):
            return PARAMETER
        if start is not None and end is not None:
            if "start" in query or "offset" in query:
                return PARAMETER
            try:
                low, high = _minute(start), _minute(end)
            except ValueError:
                return PARAMETER
            chosen = [r for r in replies if low <= _floor(r.received) < high]
        else:
            try:
                first, count = int(query.get("start", "0")), int(query.get("offset", "50"))
            except ValueError:
                return PARAMETER
            newest = sorted(replies, key=lambda r: r.received, reverse=True)
            chosen = newest[first : first + count]
        return "\n".join(r.line() for r in chosen)


def _text(body: str) -> web.Response:
    return web.Response(body=body.encode("iso-8859-15"), headers={"Content-Type": CONTENT_TYPE})


def _minute(value: str) -> datetime:
    return datetime.strptime(value, _DATE).replace(tzinfo=PARIS)


def _floor(when: datetime) -> datetime:
    local = when.astimezone(PARIS)
    return local - timedelta(seconds=local.second, microseconds=local.microsecond)
