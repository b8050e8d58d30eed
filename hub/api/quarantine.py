"""``/api/v1/quarantine``: the requests the parsers refused, seen, replayed and dropped by an
operator (what ``hub quarantine`` does, in the running hub).

- ``GET /quarantine``: a page of them, newest first, by provider, callback, replayed or
  waiting, a part of the reason and reception time; ``next_cursor`` gives the next page;
- ``GET /quarantine/{number}``: one, as received: method, query, headers and body (bytes as
  UTF-8 text when they decode, else base64, which ``base64`` says);
- ``POST /quarantine/{number}/replay``: runs it through today's parser (``hub.quarantine``);
- ``DELETE /quarantine/{number}``: drops it.

Replaying every one a filter matches is a job: ``hub.api.jobs``.

Writes go through the hub's own journal (``app[JOURNAL]``), reads off the event loop.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

import msgspec
import orjson
from aiohttp import web

from core.errors import SinkUnavailable
from core.models import Provider
from hub import offloop
from hub.api.spec import Api, Param, Problem, json_response, problem
from hub.handlers import FORWARDER, JOURNAL
from hub.quarantine import replay_entry
from hub.settings import Settings
from sinks import journal as store
from sinks.journal import Quarantined, QuarantineSelection, QuarantineSummary

MAX_NUMBER = 2**63 - 1
"""SQLite's largest row number: a greater one is no request's."""
_DIGITS = re.compile(r"[0-9]{1,19}")
Moment = Annotated[datetime, msgspec.Meta(extra_json_schema={"format": "date-time"})]
"""A time, RFC 3339 (msgspec's schema of a datetime says no format: the document says it)."""
State = Literal["waiting", "replayed", "all"]
_REPLAYED: dict[str, bool | None] = {"waiting": False, "replayed": True, "all": None}


class QuarantineFilter(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Which quarantined requests (every field given must match)."""

    provider: Provider | None = None
    callback: str | None = None
    state: State = "waiting"
    """``waiting`` (not replayed yet), ``replayed``, or ``all``."""
    reason: str | None = None
    """A part of the reason, in any case."""
    since: Moment | None = None
    """Received at or after (UTC when no offset is given)."""
    until: Moment | None = None
    """Received before."""

    def selection(self) -> QuarantineSelection:
        return QuarantineSelection(
            provider=self.provider.value if self.provider is not None else None,
            callback=self.callback,
            replayed=_REPLAYED[self.state],
            reason=self.reason,
            since=_epoch(self.since),
            until=_epoch(self.until),
        )


class ListQuery(QuarantineFilter, frozen=True, forbid_unknown_fields=False):
    cursor: Annotated[int, msgspec.Meta(ge=1, le=MAX_NUMBER)] | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=500)] = 50


class QuarantinedItem(msgspec.Struct, frozen=True):
    number: int
    received_at: str
    provider: str
    callback: str
    method: str
    reason: str
    content_type: str
    size: int
    """Bytes of its headers, query and body."""
    replayed_at: Moment | None


class QuarantinePage(msgspec.Struct, frozen=True):
    items: list[QuarantinedItem]
    next_cursor: int | None
    """The ``cursor`` of the next page (None: this is the last)."""


class Payload(msgspec.Struct, frozen=True):
    """Bytes as received: UTF-8 text when they decode, else base64."""

    base64: bool
    data: str
    size: int


class QuarantinedRequest(msgspec.Struct, frozen=True):
    number: int
    received_at: str
    provider: str
    callback: str
    method: str
    reason: str
    """Why the parser refused it."""
    content_type: str
    replayed_at: Moment | None
    headers: dict[str, str]
    """As received, but ``Authorization`` and cookies, which are never kept."""
    query: Payload
    body: Payload


class Replayed(msgspec.Struct, frozen=True):
    number: int
    events: int
    """Events journaled (a provider's retry among them: the worker leaves it out)."""
    refused: str | None
    """The parser's reason when it still refuses the request (it stays in the quarantine)."""


NUMBER = Param(
    "number",
    "path",
    "The request's number in the quarantine",
    {"type": "integer", "minimum": 1, "maximum": MAX_NUMBER},
)
FILTER_PARAMS = [
    Param("provider", "query", "Only this provider's", {"type": "string", "enum": list(Provider)}),
    Param("callback", "query", "Only this callback's (delivery, reply, webhook...)"),
    Param(
        "state",
        "query",
        "waiting (not replayed yet, the default), replayed, or all",
        {"type": "string", "enum": ["waiting", "replayed", "all"]},
    ),
    Param("reason", "query", "A part of the reason, in any case"),
    Param(
        "since",
        "query",
        "Received at or after (RFC 3339)",
        {"type": "string", "format": "date-time"},
    ),
    Param(
        "until", "query", "Received before (RFC 3339)", {"type": "string", "format": "date-time"}
    ),
]
PAGE_PARAMS = [
    Param(
        "cursor",
        "query",
        "The next_cursor of the page before",
        {"type": "integer", "minimum": 1, "maximum": MAX_NUMBER},
    ),
    Param(
        "limit",
        "query",
        "Requests a page (1-500, 50 by default)",
        {"type": "integer", "minimum": 1, "maximum": 500},
    ),
]
BAD = ("Bad parameters", Problem)
UNKNOWN = ("No such request in the quarantine", Problem)
UNAVAILABLE = ("The journal cannot take writes (or be read) now", Problem)


def register(api: Api, settings: Settings) -> None:
    path = settings.data_dir / store.JOURNAL_FILE

    def one(number: int) -> Quarantined | None:
        found = store.quarantined(path, seq=number) if path.exists() else []
        return found[0] if found else None

    @api.operation(
        "GET",
        "/quarantine",
        "Requests the parsers refused, newest first, filtered",
        params=[*FILTER_PARAMS, *PAGE_PARAMS],
        responses={200: ("A page of them", QuarantinePage), 400: BAD},
    )
    async def list_quarantine(request: web.Request) -> web.Response:
        try:
            query, selection = read_filter(request.query, ListQuery)
        except BadFilter as exc:
            return problem(400, "bad_parameter", str(exc))

        def read() -> list[QuarantineSummary]:
            if not path.exists():
                return []
            return store.quarantine_summaries(
                path, selection, before=query.cursor, limit=query.limit + 1
            )

        rows = await offloop.read(read)
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        return json_response(
            QuarantinePage(
                items=[_item(r) for r in rows], next_cursor=rows[-1].seq if more else None
            )
        )

    @api.operation(
        "GET",
        "/quarantine/{number}",
        "One refused request, as received",
        params=[NUMBER],
        responses={200: ("The request", QuarantinedRequest), 400: BAD, 404: UNKNOWN},
    )
    async def get_quarantined(request: web.Request) -> web.Response:
        number = _number(request)
        if number is None:
            return _bad_number()
        item = await offloop.read(one, number)
        if item is None:
            return _unknown(number)
        return json_response(_whole(item))

    @api.operation(
        "POST",
        "/quarantine/{number}/replay",
        "Runs one refused request through today's parser",
        params=[NUMBER],
        responses={
            200: ("What it gave (refused again: it stays)", Replayed),
            400: BAD,
            404: UNKNOWN,
            503: UNAVAILABLE,
        },
    )
    async def replay_quarantined(request: web.Request) -> web.Response:
        number = _number(request)
        if number is None:
            return _bad_number()
        item = await offloop.read(one, number)
        if item is None:
            return _unknown(number)
        try:
            outcome = await replay_entry(request.app[JOURNAL], item)
        except SinkUnavailable as exc:
            return problem(503, "journal_unavailable", f"nothing replayed: {exc.reason}")
        notify(request.app)
        return json_response(Replayed(outcome.number, outcome.events, outcome.refused))

    @api.operation(
        "DELETE",
        "/quarantine/{number}",
        "Drops one refused request, replayed or not",
        params=[NUMBER],
        responses={204: ("Dropped", None), 400: BAD, 404: UNKNOWN, 503: UNAVAILABLE},
    )
    async def drop_quarantined(request: web.Request) -> web.Response:
        number = _number(request)
        if number is None:
            return _bad_number()
        try:
            dropped = await request.app[JOURNAL].drop_quarantined([number])
        except SinkUnavailable as exc:
            return problem(503, "journal_unavailable", f"nothing dropped: {exc.reason}")
        return web.Response(status=204) if dropped else _unknown(number)


class BadFilter(ValueError):
    """A filter's parameter is not one the listing reads (the message says which, and why)."""


F = TypeVar("F", bound=QuarantineFilter)


def read_filter(query: Mapping[str, str], into: type[F]) -> tuple[F, QuarantineSelection]:
    """The filter an address's query gives (``GET /quarantine``'s, the console's page) and the
    journal's selection of it. Parameters the filter has not are ignored, and so are empty
    ones (a form's fields left blank). Raises :class:`BadFilter`."""
    fields: dict[str, Any] = {k: v for k, v in query.items() if k in into.__struct_fields__ and v}
    try:
        wanted = msgspec.convert(fields, into, strict=False)
        return wanted, wanted.selection()
    except (msgspec.ValidationError, OverflowError, ValueError) as exc:
        raise BadFilter(str(exc)) from exc


def _epoch(moment: datetime | None) -> float | None:
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _number(request: web.Request) -> int | None:
    """The path's request number (None: not a number one could have)."""
    text = request.match_info["number"]
    if not _DIGITS.fullmatch(text) or not 1 <= int(text) <= MAX_NUMBER:
        return None
    return int(text)


def _bad_number() -> web.Response:
    return problem(400, "bad_parameter", f"a request number is an integer from 1 to {MAX_NUMBER}")


def _unknown(number: int) -> web.Response:
    return problem(404, "not_found", f"no quarantined request #{number}")


def notify(app: web.Application) -> None:
    """New events journaled: the worker in the hub's loop looks at once (one in a process of its
    own finds them at its next look)."""
    forwarder = app.get(FORWARDER)
    if forwarder is not None:
        forwarder.notify()


def moment(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


def _item(row: QuarantineSummary) -> QuarantinedItem:
    return QuarantinedItem(
        number=row.seq,
        received_at=row.received_at,
        provider=row.provider,
        callback=row.callback,
        method=row.method,
        reason=row.reason,
        content_type=row.content_type,
        size=row.size,
        replayed_at=moment(row.replayed_at),
    )


def _payload(data: bytes) -> Payload:
    try:
        return Payload(base64=False, data=data.decode("utf-8"), size=len(data))
    except UnicodeDecodeError:
        return Payload(base64=True, data=base64.b64encode(data).decode(), size=len(data))


def _headers(text: str) -> dict[str, str]:
    try:
        kept = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {}
    return {str(k): str(v) for k, v in kept.items()} if isinstance(kept, dict) else {}


def _whole(item: Quarantined) -> QuarantinedRequest:
    e = item.entry
    return QuarantinedRequest(
        number=item.seq,
        received_at=e.received_at,
        provider=e.provider,
        callback=e.callback,
        method=e.method,
        reason=e.reason,
        content_type=e.content_type,
        replayed_at=moment(item.replayed_at),
        headers=_headers(e.headers),
        query=_payload(e.query),
        body=_payload(e.body),
    )
