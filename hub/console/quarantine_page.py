"""The console's quarantine pages: the requests the parsers refused (the list, filtered as
``GET /api/v1/quarantine`` filters, the filter in the address; one request as received, with its
reason), and replaying one, or all those the filter matches, through today's parsers
(``hub.quarantine``, as ``hub quarantine replay`` does). All those matching are replayed by a
background job of the hub (``hub.jobs``, as ``POST /api/v1/quarantine/replay`` starts one): the
list shows its progress, which the page's script reads from ``/api/v1/jobs/{id}``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import get_args
from urllib.parse import urlencode

import orjson
from aiohttp import web

from core.errors import SinkUnavailable
from core.models import Provider
from hub import offloop, operator
from hub.api.quarantine import BadFilter, QuarantineFilter, State, notify, read_filter
from hub.console.render import render
from hub.handlers import JOURNAL
from hub.jobs import JOBS, Busy, Job
from hub.quarantine import Outcome, replay
from hub.settings import Settings
from sinks import journal as store
from sinks.journal import Quarantined, QuarantineSelection, QuarantineSummary

SHOWN = 500
"""Requests the list shows at most (the newest first); the count says how many more match."""
FILTER = QuarantineFilter.__struct_fields__
"""The filter's fields: provider, callback, state, a part of the reason, since, until."""
SETTINGS = web.AppKey("console_settings", Settings)


async def _read(request: web.Request, seq: int) -> list[Quarantined]:
    """One quarantined request, read in a thread (a disk that stalls must not stall the loop)."""
    path = _path(request)
    if not path.exists():
        return []
    return await offloop.read(partial(store.quarantined, path, seq=seq))


async def listing(request: web.Request) -> web.Response:
    filters = _given(request.query)
    error, status = "", 200
    found: list[QuarantineSummary] = []
    matched = waiting = 0
    try:
        _, selection = read_filter(filters, QuarantineFilter)
        found, matched, waiting = await offloop.read(_matching, _path(request), selection)
    except BadFilter as exc:
        error, status = str(exc), 400
    return render(
        request,
        "quarantine.html",
        active="quarantine",
        title="Quarantine",
        status=status,
        error=error,
        filters=filters,
        here=urlencode(filters),
        providers=[p.value for p in Provider],
        states=list(get_args(State)),
        state=filters.get("state", "waiting"),
        items=found,
        more=max(0, matched - SHOWN),
        matched=matched,
        waiting=waiting,
        done=_done(request),
        job=_job(request),
    )


def _given(query: Mapping[str, str]) -> dict[str, str]:
    """The filter's fields set in the address (or a form), in the order of the form; ``all=1``
    (the page's address before it had filters) is ``state=all``."""
    given = {n: query[n].strip() for n in FILTER if query.get(n, "").strip()}
    if query.get("all") == "1" and "state" not in given:
        given["state"] = "all"
    return given


def _path(request: web.Request) -> Path:
    return request.app[SETTINGS].data_dir / store.JOURNAL_FILE


def _matching(
    path: Path, selection: QuarantineSelection
) -> tuple[list[QuarantineSummary], int, int]:
    """The newest requests the selection matches (the :data:`SHOWN` newest), how many it
    matches, and how many of those wait."""
    if not path.exists():
        return [], 0, 0
    found = store.quarantine_summaries(path, selection, limit=SHOWN)
    matched, _ = store.quarantine_counted(path, selection)
    if selection.replayed is False:
        return found, matched, matched
    waiting, _ = store.quarantine_counted(path, replace(selection, replayed=False))
    return found, matched, waiting


def _job(request: web.Request) -> Job | None:
    """The replay job the address names (``?job=``), if the hub still knows it."""
    job_id = request.query.get("job", "")
    jobs = request.app.get(JOBS)
    return jobs.get(job_id) if job_id and jobs is not None else None


async def entry(request: web.Request) -> web.Response:
    number = _number(request)
    found = await _read(request, number)
    if not found:
        raise web.HTTPNotFound(text=f"no quarantined request #{number}\n")
    item = found[0]
    e = item.entry
    try:
        headers = sorted(orjson.loads(e.headers).items())
    except orjson.JSONDecodeError:
        headers = [("(unreadable)", e.headers)]
    return render(
        request,
        "quarantine_entry.html",
        active="quarantine",
        title=f"Quarantined request #{number}",
        item=item,
        headers=headers,
        query=e.query.decode("utf-8", "backslashreplace"),
        body=e.body.decode("utf-8", "backslashreplace"),
        done=_done(request),
    )


async def replay_one(request: web.Request) -> web.Response:
    number = _number(request)
    outcomes = await _replay(request, [number])
    if not outcomes:
        raise web.HTTPNotFound(text=f"no quarantined request #{number}\n")
    return operator.redirect(f"/console/quarantine/{number}?{_summary(outcomes)}")


async def replay_matching(request: web.Request) -> web.Response:
    """Starts the job replaying every request the form's filter matches (or finds the one
    running): the list, the filter kept, showing its progress."""
    form = await request.post()
    filters = _given({k: v for k, v in form.items() if isinstance(v, str)})
    try:
        _, selection = read_filter(filters, QuarantineFilter)
    except BadFilter as exc:
        raise web.HTTPBadRequest(text=f"{exc}\n") from exc
    path = _path(request)
    matched = await offloop.read(
        lambda: store.quarantine_counted(path, selection) if path.exists() else (0, 0)
    )
    app = request.app
    try:
        job = app[JOBS].start(app[JOURNAL], selection, matched, lambda: notify(app))
    except Busy as exc:
        job = exc.job
    return operator.redirect(f"/console/quarantine?{urlencode({**filters, 'job': job.id})}")


async def _replay(request: web.Request, numbers: list[int] | None) -> list[Outcome]:
    try:
        return await replay(request.app[SETTINGS], numbers)
    except SinkUnavailable as exc:
        raise web.HTTPServiceUnavailable(
            text=f"the journal cannot take events ({exc.reason}): nothing replayed\n"
        ) from exc


def _summary(outcomes: list[Outcome]) -> str:
    """The outcome, in the address the browser is sent to (after the POST, a GET)."""
    refused = [o for o in outcomes if o.refused]
    return urlencode(
        {
            "replayed": len(outcomes) - len(refused),
            "events": sum(o.events for o in outcomes),
            "refused": ",".join(f"{o.number}:{o.refused}" for o in refused),
        }
    )


def _done(request: web.Request) -> dict[str, object] | None:
    """What the last replay did, from the address (None: no replay)."""
    if "replayed" not in request.query:
        return None
    refused = [r.partition(":") for r in request.query.get("refused", "").split(",") if r]
    return {
        "replayed": _int(request.query.get("replayed")),
        "events": _int(request.query.get("events")),
        "refused": [(number, reason) for number, _, reason in refused if number.isdigit()],
    }


def _int(text: str | None) -> int:
    return int(text) if text and text.isdigit() else 0


def _number(request: web.Request) -> int:
    text = request.match_info["number"]
    if not text.isdigit():
        raise web.HTTPNotFound(text="a quarantined request's number is a number\n")
    return int(text)


def register(app: web.Application, settings: Settings) -> None:
    app[SETTINGS] = settings
    app.router.add_get("/console/quarantine", listing, name="quarantine")
    app.router.add_post("/console/quarantine/replay", replay_matching, name="quarantine-replay")
    app.router.add_get("/console/quarantine/{number}", entry, name="quarantine-entry")
    app.router.add_post("/console/quarantine/{number}/replay", replay_one)
