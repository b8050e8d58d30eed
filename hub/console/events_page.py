"""The console's events: the list the read model finds for a filter (the filters of
``GET /api/v1/events``, in the address: every view a deep link), a page at a time with the
cursor; the live view's new rows (what came since the newest shown, read from the index, so
with no broker too); and the filter's CSV export (bounded: :data:`CSV_ROWS`). All of it from
the app's read model (``hub.readmodel``): this hub's index, or with ``HUB_INDEX_URL`` every
replica's events."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from urllib.parse import urlencode

import msgspec
from aiohttp import web

from core.vocabulary import Channel, Failure, Kind, Provider, State
from hub import lookup, offloop, readmodel
from hub.console.render import fragment, render
from hub.console.rows import Row, row
from hub.lookup import BadQuery, Query
from hub.settings import Settings

FILTERS = [name for name in lookup.PARAMETERS if name != "cursor"]
"""What the address keeps of a view: the API's filters and the page's size."""
CHOICES: Mapping[str, list[str]] = {
    "provider": [p.value for p in Provider],
    "channel": [c.value for c in Channel],
    "kind": [k.value for k in Kind],
    "state": [s.value for s in State],
    "failure": [f.value for f in Failure],
}
MORE = frozenset(
    {"channel", "kind", "failure", "until", "received_since", "received_until", "limit"}
)
"""The filters the form folds away (under "More filters") unless one of them is set."""
LIVE_ROWS = 100
"""New rows the live view takes at a look; more came: the page says so (reload to see all)."""
CSV_ROWS = 10_000
"""Rows a CSV export holds at most (newest first); a cut file says so in its last line and in
its ``X-Export-Cut`` header."""
CSV_COLUMNS = [
    "seq", "replica", "received_at", "time", "provider", "channel", "kind", "state", "final",
    "failure", "message_id", "related_message_id", "reference", "sender", "recipient", "status",
    "error", "text",
]  # fmt: skip


def given(request: web.Request) -> dict[str, str]:
    """The filters of the address that are set (the form's empty fields are none)."""
    return {n: request.query[n].strip() for n in FILTERS if request.query.get(n, "").strip()}


def _query(request: web.Request, **extra: str) -> Query:
    return lookup.query({**given(request), **extra})


async def _events(request: web.Request, query: Query) -> readmodel.Listing:
    return await request.app[readmodel.READ_MODEL].events(query)


async def listing(request: web.Request) -> web.Response:
    filters = given(request)
    cursor = request.query.get("cursor", "").strip()
    error, rows, next_cursor, newest, status = "", list[Row](), None, None, 200
    try:
        page = await _events(request, _query(request, **({"cursor": cursor} if cursor else {})))
        rows, next_cursor, newest = [row(i) for i in page.items], page.next_cursor, page.newest
    except BadQuery as exc:
        error, status = str(exc), 400
    except readmodel.Unavailable as exc:
        error, status = f"{exc}.", 503
    return render(
        request,
        "events.html",
        active="events",
        status=status,
        title="Events",
        filters=filters,
        more_set=bool(set(filters) & MORE),
        choices=CHOICES,
        rows=rows,
        error=error,
        paged=bool(cursor),
        newest=newest or 0,
        shared=request.app[readmodel.READ_MODEL].shared,
        live=request.query.get("live") == "1" and not cursor,
        here=urlencode(filters),
        next_page=urlencode({**filters, "cursor": next_cursor}) if next_cursor else None,
    )


async def live(request: web.Request) -> web.Response:
    """``?<filters>&after=N``: the events past ``after``, as rows to put atop the list
    (JSON: ``rows``, HTML; ``last``, where the newest stands in the index's order, the next
    ``after``; ``more``: some were left out)."""
    try:
        after = _after(request.query.get("after", "").strip())
        query = _query(request, limit=str(LIVE_ROWS))
        page = await _events(request, replace(query, after=after))
    except BadQuery as exc:
        return web.json_response({"error": "bad_parameter", "detail": str(exc)}, status=400)
    except readmodel.Unavailable as exc:
        return web.json_response({"error": "index_unavailable", "detail": str(exc)}, status=503)
    rows = [row(i) for i in page.items]
    shared = request.app[readmodel.READ_MODEL].shared
    return web.json_response(
        {
            "rows": fragment("_event_rows.html", rows=rows, shared=shared),
            "count": len(rows),
            "last": page.newest if page.newest is not None else after,
            "more": page.next_cursor is not None,
        }
    )


def _after(text: str) -> int:
    """The live view's ``after``: 0 (from the start), or the place of the newest event shown
    (the ``last`` of the previous answer; BadQuery otherwise)."""
    if text in ("", "0"):
        return 0
    try:
        return lookup.seq_of(text)
    except BadQuery:
        raise BadQuery("after: the place of the newest event shown (its last)") from None


def safe_cell(value: object) -> str:
    """A cell a spreadsheet shows as text: one starting with ``= + - @`` (or a tab, a carriage
    return) would be read as a formula (CSV injection: a provider's text is anyone's), so it
    gets a leading ``'``."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


async def _csv(model: readmodel.ReadModel, query: Query) -> tuple[str, int | None]:
    """The CSV of the query's events (at most :data:`CSV_ROWS`); the cursor where it was cut.
    The pages are read by the read model (in its threads), the file written in a thread too:
    ten thousand documents read and quoted would hold the loop that answers providers."""
    items: list[readmodel.EventItem[msgspec.Raw]] = []
    cursor = None
    while len(items) < CSV_ROWS:
        query = replace(query, limit=min(lookup.MAX_LIMIT, CSV_ROWS - len(items)))
        page = await model.events(query)
        items += page.items
        cursor = page.next_cursor
        if cursor is None or not page.items:
            return await offloop.read(_written, items, cut=False), None
        query = replace(query, before=cursor)
    return await offloop.read(_written, items, cut=True), cursor


def _written(items: list[readmodel.EventItem[msgspec.Raw]], *, cut: bool) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for found in items:
        r = row(found)
        values = {**r.__dict__, "received_at": r.received_at.isoformat()}
        writer.writerow([safe_cell(values[c]) for c in CSV_COLUMNS])
    if cut:
        writer.writerow([f"# cut at {CSV_ROWS} rows: more events match (narrow the filter)"])
    return out.getvalue()


async def export(request: web.Request) -> web.Response:
    try:
        text, cut = await _csv(request.app[readmodel.READ_MODEL], _query(request))
    except BadQuery as exc:
        raise web.HTTPBadRequest(text=f"{exc}\n") from exc
    except readmodel.Unavailable as exc:
        raise web.HTTPServiceUnavailable(text=f"{exc}.\n") from exc
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    response = web.Response(text=text, content_type="text/csv", charset="utf-8")
    response.headers["Content-Disposition"] = f'attachment; filename="events-{stamp}.csv"'
    if cut is not None:
        response.headers["X-Export-Cut"] = str(CSV_ROWS)
    return response


def register(app: web.Application, settings: Settings) -> None:
    app.router.add_get("/console/events", listing, name="events")
    app.router.add_get("/console/events/live", live, name="events-live")
    app.router.add_get("/console/events.csv", export, name="events-csv")
