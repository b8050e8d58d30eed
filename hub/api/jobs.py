"""``POST /api/v1/quarantine/replay`` and ``GET /api/v1/jobs/{id}``: replaying every refused
request a filter matches, as a background job of the hub (``hub.jobs``), and its progress.

The filter is the listing's (``hub.api.quarantine.QuarantineFilter``), in a JSON body: ``{}``
replays every request waiting. Jobs are kept in memory, the last ones only: a restart forgets
them (the quarantine itself is in the journal, and replaying again is harmless).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import msgspec
from aiohttp import web

from core.models import Provider
from hub import offloop
from hub.api.quarantine import BAD, Moment, QuarantineFilter, State, moment, notify
from hub.api.spec import Api, Param, Problem, json_response, problem
from hub.handlers import JOURNAL
from hub.jobs import JOBS, Busy, Job, Jobs, JobState
from hub.settings import Settings
from sinks import journal as store
from sinks.journal import QuarantineSelection


class JobStatus(msgspec.Struct, frozen=True):
    id: str
    state: JobState
    total: int
    """Requests the filter matched when the job started."""
    done: int
    """Requests replayed so far (those still refused among them)."""
    events: int
    """Events journaled."""
    refused: int
    """Requests still refused."""
    refused_by_reason: dict[str, int]
    error: str | None
    """Why the job failed (the journal could not take events, the hub shut down...)."""
    started_at: Moment
    finished_at: Moment | None
    filter: QuarantineFilter


def register(api: Api, settings: Settings) -> None:
    path = settings.data_dir / store.JOURNAL_FILE
    jobs = Jobs()

    async def expose(app: web.Application) -> AsyncIterator[None]:
        app[JOBS] = jobs  # for the console's pages
        yield

    async def stop(app: web.Application) -> None:
        await jobs.stop()  # before the journal closes

    api.contexts.append(expose)
    api.on_shutdown.append(stop)

    @api.operation(
        "POST",
        "/quarantine/replay",
        "Replays every refused request a filter matches, as a background job",
        body=QuarantineFilter,
        responses={
            202: ("The job, started (its progress: GET /api/v1/jobs/{id})", JobStatus),
            400: BAD,
            409: ("A replay job runs already (its id in the detail)", Problem),
        },
    )
    async def replay_matching(request: web.Request) -> web.Response:
        try:
            wanted = msgspec.json.decode(await request.read(), type=QuarantineFilter)
            selection = wanted.selection()
        except (msgspec.ValidationError, msgspec.DecodeError, OverflowError, ValueError) as exc:
            return problem(400, "bad_body", f"a JSON object of filters is expected: {exc}")
        matched = await offloop.read(
            lambda: store.quarantine_counted(path, selection) if path.exists() else (0, 0)
        )
        try:
            job = jobs.start(request.app[JOURNAL], selection, matched, lambda: notify(request.app))
        except Busy as exc:
            return problem(409, "job_running", f"replay job {exc.job.id} runs: wait for it")
        response = json_response(_job(job), 202)
        response.headers["Location"] = f"{api.prefix}/jobs/{job.id}"
        return response

    @api.operation(
        "GET",
        "/jobs/{id}",
        "A replay job's progress (jobs are kept in memory: a restart forgets them)",
        params=[Param("id", "path", "The job's id, as POST /api/v1/quarantine/replay gave it")],
        responses={200: ("Its progress", JobStatus), 404: ("No such job (or forgotten)", Problem)},
    )
    async def get_job(request: web.Request) -> web.Response:
        job = jobs.get(request.match_info["id"])
        if job is None:
            return problem(404, "not_found", "no such job (jobs are forgotten at a restart)")
        return json_response(_job(job))


def _filter(selection: QuarantineSelection) -> QuarantineFilter:
    """What a job was asked, in the API's words."""
    state: State = "all"
    if selection.replayed is not None:
        state = "replayed" if selection.replayed else "waiting"
    return QuarantineFilter(
        provider=Provider(selection.provider) if selection.provider is not None else None,
        callback=selection.callback,
        state=state,
        reason=selection.reason,
        since=moment(selection.since),
        until=moment(selection.until),
    )


def _job(job: Job) -> JobStatus:
    return JobStatus(
        id=job.id,
        state=job.state,
        total=job.total,
        done=job.done,
        events=job.events,
        refused=job.refused.total(),
        refused_by_reason=dict(job.refused),
        error=job.error,
        started_at=datetime.fromtimestamp(job.started_at, UTC),
        finished_at=moment(job.finished_at),
        filter=_filter(job.selection),
    )
