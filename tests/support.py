"""Small helpers shared by the tests."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from yarl import URL

from core.models import Channel, Event, EventData, Kind, Provider, State
from hub import backlog
from hub.settings import Settings
from sinks import index
from sinks import journal as store
from sinks.journal import Journal, QuarantineEntry

PAYLOADS = Path(__file__).resolve().parent.parent / "parsers" / "samples"
"""The golden cases, which are also the samples ``hub send`` sends (see ``tests.golden``)."""
SEED_DLR = (PAYLOADS / "isendpro" / "seed-delivery-report.query").read_bytes()
SEED_REPLY = (PAYLOADS / "isendpro" / "seed-reply.query").read_bytes()
SECRET = "test-secret-0123456789"
"""The callback secret of every provider in the tests' settings."""
DLR = f"/callbacks/isendpro/{SECRET}/delivery"
REPLY = f"/callbacks/isendpro/{SECRET}/reply"


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Settings on a throwaway data directory, every provider's secret being ``SECRET``; the
    pipeline worker in the app's own loop (``forwarder="inline"``: no child process per test);
    the console's token ``CONSOLE_TOKEN``."""
    secrets = {f"secret_{p.value}": SECRET for p in Provider}
    defaults = {"allow_ecall": LOOPBACK, "forwarder": "inline", "console_token": CONSOLE_TOKEN}
    return Settings(data_dir=data_dir, **{**secrets, **defaults, **overrides})


CONSOLE_TOKEN = "test-console-token-0123456789"
"""The operator's token in the tests' settings (``HUB_CONSOLE_TOKEN``)."""
OPERATOR = {"Authorization": f"Bearer {CONSOLE_TOKEN}"}
"""The headers of an operator's request to the API."""

LOOPBACK = "127.0.0.0/8,::1"
"""eCall's callbacks are refused from anywhere but its own addresses by default: tests add
loopback, as an operator would add a test host."""


def hub_env() -> dict[str, str]:
    """The environment a test gives a real ``hub serve`` process: secrets, loopback allowed."""
    env = {f"HUB_SECRET_{p.value.upper()}": SECRET for p in Provider}
    env["HUB_ALLOW_ECALL"] = LOOPBACK
    return env


def dlr_query(message_id: int, *, statut: str = "0") -> str:
    """A distinct iSendPro delivery report (its own id, so its own event)."""
    return (
        f"tel=0612345678&statut={statut}&code_erreur=000&date=2024-05-01&heure=10:00:00"
        f"&id={message_id}&operateur=SFR&tracker=t{message_id}"
    )


def raw_url(client: Any, path_and_query: str) -> URL:
    """The test server's URL for a path and query sent exactly as given.

    aiohttp's client re-quotes URLs (``%a%`` becomes ``%25a%25``), which would change what a
    provider really sends: pass this to ``client.session.request`` instead.
    """
    base = str(client.make_url("/")).rstrip("/")
    return URL(base + path_and_query, encoded=True)


async def get_raw(client: Any, path_and_query: str) -> Any:
    """GET exactly this path and query (see :func:`raw_url`)."""
    return await client.session.get(raw_url(client, path_and_query))


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 30.0) -> None:
    """Waits until ``check()`` is true, polling; fails after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.05)


def wait_until(
    check: Callable[[], bool], timeout: float = 30.0, *, failure: Callable[[], str] = str
) -> None:
    """:func:`eventually` for code that is not async: blocks until ``check()`` is true, polling;
    fails after ``timeout`` seconds, saying ``failure()`` (a log's tail...)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not true within {timeout} s: {failure()}"
        time.sleep(0.05)


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in a Prometheus exposition, or None when absent."""
    for line in text.splitlines():
        match = re.fullmatch(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(match.group(3))
    return None


def event(message_id: int, *, statut: str = "0") -> Event:
    """A distinct iSendPro delivery report, as the hub makes it."""
    state = State.DELIVERED if statut == "0" else State.FAILED
    data = EventData(
        provider=Provider.ISENDPRO,
        channel=Channel.SMS,
        kind=Kind.DELIVERY,
        state=state,
        final=True,
        message_id=str(message_id),
        raw={"id": str(message_id), "statut": statut},
        received_at=datetime.now(UTC),
    )
    return Event.of(data)


def unforwarded(data_dir: Path) -> int:
    """Events of the journal in ``data_dir`` after its forwarder's cursor (a hub that forwards),
    counted as ``/metrics`` and ``hub journal stats`` count them."""
    return backlog.of(data_dir, data_dir / store.JOURNAL_FILE, forwarding=True).events


# -- a provider's load: callbacks streamed to a hub, what each one got --------------------------


@dataclass
class Results:
    """What each callback ``i`` of a stream got."""

    acked: set[int] = field(default_factory=set)
    refused: dict[int, str] = field(default_factory=dict)
    """Answered with something else than ``validation`` (status and body)."""
    failed: dict[int, str] = field(default_factory=dict)
    """No answer: the connection was refused or cut (the exception's type)."""
    progress: asyncio.Event = field(default_factory=asyncio.Event)
    """Set at each answer, and when the stream ends."""

    @property
    def answered(self) -> int:
        return len(self.acked) + len(self.refused)


async def stream(
    url: str,
    ids: range,
    results: Results,
    *,
    in_flight: int = 8,
    pace: float = 0.0,
    stop: asyncio.Event | None = None,
) -> Results:
    """Sends callback ``i`` for each ``i`` in ``ids``, ``in_flight`` at a time, each worker
    waiting ``pace`` seconds between two requests, until ``ids`` run out or ``stop`` is set.
    After a request without an answer, the stream stops (the hub is gone)."""
    stop = stop or asyncio.Event()
    todo = iter(ids)
    timeout = aiohttp.ClientTimeout(total=30)

    async def worker(http: aiohttp.ClientSession) -> None:
        for i in todo:
            if stop.is_set():
                return
            try:
                async with http.get(f"{url}{DLR}?{dlr_query(i)}") as resp:
                    body = await resp.text()
            except (aiohttp.ClientError, TimeoutError) as exc:
                results.failed[i] = type(exc).__name__
                stop.set()
                return
            if resp.status == 200 and body == "validation":
                results.acked.add(i)
            else:
                results.refused[i] = f"{resp.status} {body}"
            results.progress.set()
            if pace:
                await asyncio.sleep(pace)  # a provider's pace, not a wait for a condition

    connector = aiohttp.TCPConnector(limit=in_flight)
    try:
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            await asyncio.gather(*(worker(http) for _ in range(in_flight)))
    finally:
        results.progress.set()
    return results


async def acked(results: Results, count: int, streaming: asyncio.Task[Results]) -> None:
    """Returns as soon as ``count`` callbacks are acknowledged, or once the stream is over."""
    async with asyncio.timeout(30):
        while len(results.acked) < count and not streaming.done():
            results.progress.clear()
            await results.progress.wait()


def journaled(data_dir: Path) -> dict[int, str]:
    """Callback number -> its event id, in arrival order, from the journal (read once the hub
    has stopped), the retries the pipeline worker marked duplicate left out."""
    rows = store.select(data_dir / store.JOURNAL_FILE, limit=100_000)
    duplicates = index.duplicates(data_dir, 0, rows[-1].seq) if rows else set()
    rows = [r for r in rows if r.seq not in duplicates]
    ids = {int(r.event().data.message_id or -1): r.envelope.id for r in rows}
    assert len(ids) == len(rows), "one event per callback in the journal"
    return ids


def run_hub(
    *args: str, env: dict[str, str], timeout: float = 30, check: bool = False, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """The ``hub`` command in a process of its own, as a user runs it (its exit code is the
    caller's to check, unless ``check``); ``timeout`` bounds a command that would hang."""
    return subprocess.run(
        [sys.executable, "-m", "hub", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=check,
        **kwargs,
    )


def clean_env(data_dir: Path) -> dict[str, str]:
    """The process environment with no ``HUB_*`` variable but ``HUB_DATA_DIR``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env["HUB_DATA_DIR"] = str(data_dir)
    return env


async def append_events(data_dir: Path, events: list[Event]) -> None:
    """Appends events to the journal of ``data_dir``, as callbacks do."""
    opened = Journal.open(data_dir)
    try:
        await opened.append(events)
    finally:
        opened.close()


def write_journal(data_dir: Path, events: list[Event], *, index_url: str | None = None) -> None:
    """A journal in ``data_dir`` holding ``events``, processed by the pipeline worker's index
    (with ``index_url``, the worker's local index and the shared one, as a replica's worker
    records them), as a hub would have left it."""

    async def write() -> None:
        journal = Journal.open(data_dir)
        try:
            await journal.append(events)
        finally:
            journal.close()

    asyncio.run(write())
    rows = store.select(data_dir / store.JOURNAL_FILE, limit=100_000)
    journaled = [(r.seq, r.envelope.id, r.received_at, r.envelope.body) for r in rows]
    window = Settings().dedup_window
    index_file = index.IndexFile.open(data_dir)
    try:
        if index_url is None:
            index_file.process(journaled, window)
            return
        from hub.shared_index import replicated  # the postgres extra's driver

        with replicated(index_url, data_dir, index_file, timeout=10.0) as both:
            both.process(journaled, window)
    finally:
        index_file.close()


def replica_of(data_dir: Path, backend: dict[str, Any]) -> str | None:
    """The name the shared index knows ``data_dir``'s events by, with the settings ``backend``
    (``tests.conftest``'s ``index_backend``); None with the local index (this hub's own)."""
    return (data_dir / "replica").read_text().strip() if backend.get("index_url") else None


async def keep_refused(data_dir: Path, *, query: bytes, reason: str = "parser_error") -> int:
    """An iSendPro delivery report (GET ``query``) in the quarantine of ``data_dir``, as a hub
    whose parser refused it would have kept it; its number."""
    journal = Journal.open(data_dir)
    try:
        return await journal.quarantine(
            QuarantineEntry(
                received_at="2024-05-01T10:00:00+00:00",
                provider="isendpro",
                callback="delivery",
                method="GET",
                reason=reason,
                content_type="",
                headers=orjson.dumps({"User-Agent": "iSendPro <b>bold</b>"}).decode(),
                query=query,
                body=b"",
            )
        )
    finally:
        journal.close()


def sql(postgres: Any, url: str, query: str) -> list[list[str]]:
    """``query``'s rows (``|``-separated columns) on the database of ``url``, on the harness's
    server ``postgres``, through psql: no driver of the hub's."""
    name = url.rsplit("/", 1)[1]
    out = postgres._run(
        "psql", "-h", "127.0.0.1", "-p", str(postgres.port), "-U", "hub", "-d", name,
        "-X", "-A", "-t", "-F", "|", "-v", "ON_ERROR_STOP=1", "-c", query,
    )  # fmt: skip
    return [line.split("|") for line in out.splitlines() if line]
