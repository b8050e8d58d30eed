"""Replays of every quarantined request a selection matches, run as background jobs in the
hub's own loop, through the hub's own journal (``POST /api/v1/quarantine/replay``).

A job counts what matches when it starts (``total``: those with a number up to the greatest
matching then; requests refused later wait for the next job), then replays them oldest first,
a batch at a time, the batch's requests side by side so that their appends share the journal's
group commits. Its progress (``done``, events journaled, still refused and why) is read while
it runs.

Jobs are kept in memory (:class:`Jobs`, the last :data:`KEPT` of them): a restart forgets them,
and stops the one running. Nothing is lost with it: the quarantine is in the journal, what was
replayed is marked there, and running a replay again is harmless (the events are those already
journaled, same ids: the pipeline worker marks them duplicate within its deduplication window).
One job runs at a time: a second one would replay the same requests.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from aiohttp import web

from core.errors import SinkUnavailable
from hub import intake
from hub.quarantine import Outcome, replay_entry
from sinks import journal as store
from sinks.journal import Journal, QuarantineSelection

log = logging.getLogger(__name__)

KEPT = 50
"""Jobs kept for their progress to be read (the oldest finished ones go first)."""
BATCH = 64
"""Requests read, and replayed side by side, at a time."""


JobState = Literal["running", "done", "failed"]


class Busy(Exception):
    """A job runs already."""

    def __init__(self, job: Job) -> None:
        super().__init__(job.id)
        self.job = job


@dataclass
class Job:
    id: str
    selection: QuarantineSelection
    total: int
    """Requests matched when the job started."""
    started_at: float = field(default_factory=time.time)
    state: JobState = "running"
    """``running``, ``done`` or ``failed`` (``error`` says why)."""
    done: int = 0
    """Requests replayed so far, those still refused among them."""
    events: int = 0
    """Events journaled."""
    refused: Counter[str] = field(default_factory=Counter)
    """Requests still refused, by reason."""
    error: str | None = None
    finished_at: float | None = None

    def count(self, outcome: Outcome) -> None:
        self.done += 1
        self.events += outcome.events
        if outcome.refused is not None:
            self.refused[outcome.refused] += 1

    def end(self, error: str | None = None) -> None:
        self.state = "failed" if error else "done"
        self.error = error
        self.finished_at = time.time()


class Jobs:
    """The hub's replay jobs: the running one and the last finished ones (``app[JOBS]``)."""

    def __init__(self, kept: int = KEPT, batch: int = BATCH) -> None:
        self.kept = kept
        self.batch = batch
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def running(self) -> Job | None:
        return next((j for j in self._jobs.values() if j.state == "running"), None)

    def start(
        self,
        journal: Journal,
        selection: QuarantineSelection,
        matched: tuple[int, int],
        notify: Callable[[], None] = lambda: None,
    ) -> Job:
        """Starts replaying the ``selection``; ``matched``: how many it matches and the greatest
        number among them (``sinks.journal.quarantine_counted``, read by the caller off the
        loop); ``notify`` after each batch (the inline worker: new events). Raises
        :class:`Busy` while another job runs."""
        if (running := self.running()) is not None:
            raise Busy(running)
        total, last = matched
        job = Job(secrets.token_hex(8), selection, total)
        self._jobs[job.id] = job
        self._forget_old()
        task = asyncio.get_running_loop().create_task(
            self._run(job, journal, last, notify), name=f"replay-{job.id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    async def stop(self) -> None:
        """Stops the running job (at shutdown, before the journal closes)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _forget_old(self) -> None:
        finished = [j.id for j in self._jobs.values() if j.state != "running"]
        for job_id in finished[: max(len(self._jobs) - self.kept, 0)]:
            del self._jobs[job_id]

    async def _run(self, job: Job, journal: Journal, last: int, notify: Callable[[], None]) -> None:
        after = 0
        try:
            while after < last:
                items = await asyncio.to_thread(
                    store.quarantine_selected,
                    journal.path,
                    job.selection,
                    after=after,
                    up_to=last,
                    limit=self.batch,
                )
                if not items:
                    break
                outcomes = await asyncio.gather(
                    *(replay_entry(journal, item) for item in items), return_exceptions=True
                )
                for outcome in outcomes:
                    if isinstance(outcome, BaseException):
                        raise outcome
                    job.count(outcome)
                after = items[-1].seq
                notify()
        except asyncio.CancelledError:
            job.end("stopped: the hub shut down")
            raise
        except SinkUnavailable as exc:
            log.warning(
                "replay job %s stopped: the journal cannot take events (%s)", job.id, exc.reason
            )
            job.end(exc.reason)
        except Exception as exc:  # a bug of ours: said once, the job failed, the hub goes on
            log.error("replay job %s failed: %s", job.id, intake.where(exc))
            job.end("internal_error")
        else:
            job.end()


JOBS = web.AppKey("jobs", Jobs)
