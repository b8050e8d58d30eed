"""What the shared index costs the pipeline worker (issue 19): its events/s with the local index
alone and with the shared index on PostgreSQL beside it (``HUB_INDEX_URL``), the rest alike.

A journal of synthetic events (``bench.lookup``'s traffic: five providers, reports and replies,
1 % of them a provider's retry) is written once, no index, no cursor: what a hub's journal holds
before its worker has run. Each run copies it into a data directory of its own and starts the
worker on it (``hub forward``, pinned to the server core, as the forwarder step's), with the
benchmark's RabbitMQ node: it indexes, deduplicates and publishes every event, from the first to
the last. The figure is the worker's rate from the backlog's first decrease to zero
(``bench.forward.drain``: its start, the broker's connection and the schema's migration left
out), and its CPU time per event. With the shared index the worker also records each batch in
the database (one statement a batch, in the same transaction as the claims) before its local
index: a database of the run's own, its schema made before the worker starts, on a throwaway
PostgreSQL (``tests/harness/postgres.py``, pinned with the broker on the client core, its
commits synced as in production); that server's CPU time per event is beside it (its backends').

Each run is checked: its local index says the same events are duplicates (the database changes
nothing for one replica alone), and with the shared index the database holds every event. Runs
alternate which mode goes first from round to round; the figure kept for each is the median
round, and ``ratio`` is shared ÷ local (events/s; ``cpu_ratio``: local CPU per event ÷ shared).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from bench import forward, lookup, procs, report
from bench.servers import Config, pinned, purge
from sinks import index
from sinks import journal as store
from sinks.index_pg import upgrade
from sinks.journal import Journal
from tests.harness.postgres import PostgresServer

MODES = ("local", "shared")
WORKER = [sys.executable, "-m", "hub", "forward"]

log = logging.getLogger("bench")


def journal_only(data_dir: Path, count: int) -> None:
    """A journal of ``count`` synthetic events in ``data_dir``, nothing indexed."""

    async def write() -> None:
        journal = Journal.open(data_dir)
        try:
            rng = random.Random(19)  # noqa: S311 - synthetic traffic, the same at each run
            for chunk, _ in lookup.batches(count, datetime.now(UTC), rng):
                await journal.append(chunk)
        finally:
            journal.close()

    asyncio.run(write())


def order(round_number: int) -> tuple[str, str]:
    """Which mode goes first in a round: the local index in even rounds, the shared in odd."""
    return MODES if round_number % 2 == 0 else (MODES[1], MODES[0])


def database_cpu(server: PostgresServer) -> float:
    """CPU seconds of the server's postmaster and its processes (the backends)."""
    if server.pid is None:
        return 0.0
    total = 0.0
    for pid in [server.pid, *procs.children(server.pid)]:
        try:
            total += procs.cpu_seconds(pid)
        except OSError:  # a backend that has just ended
            continue
    return total


def one_run(
    config: Config,
    template: Path,
    work: Path,
    broker: str,
    server: PostgresServer | None,
    name: str,
) -> dict[str, Any]:
    """The worker once on a copy of ``template``: with ``server``, on a database of its own."""
    data_dir = work / name
    shutil.copytree(template, data_dir)
    journal = data_dir / store.JOURNAL_FILE
    purge(broker)
    env = {**os.environ, **procs.hub_env(0, data_dir, broker)}
    url = None
    if server is not None:
        server.psql(f"CREATE DATABASE {name}")
        url = env["HUB_INDEX_URL"] = server.url.rsplit("/", 1)[0] + "/" + name
        logging.getLogger("alembic").setLevel(logging.WARNING)  # a line per step otherwise
        upgrade(url)  # the schema made before the run (not timed)
    backlog = forward.pending(journal)
    with open(work / f"{name}.log", "ab") as out:
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [*pinned(config.server_cpu), *WORKER],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        db_before = database_cpu(server) if server is not None else 0.0
        drained = forward.drain(journal, 600, lambda: procs.cpu_seconds(proc.pid))
        db_used = database_cpu(server) - db_before if server is not None else 0.0
    finally:
        procs.stop(proc)
    duplicates = sum(index.read(data_dir).counts.duplicates.values())
    shutil.rmtree(data_dir, ignore_errors=True)
    figures: dict[str, Any] = {
        "backlog": backlog,
        "events": drained.events,
        "seconds": round(drained.seconds, 3),
        "eps": round(drained.rate, 1),
        "cpu_us_per_event": round(drained.cpu_seconds * 1e6 / max(drained.events, 1), 1),
        "duplicates": duplicates,
    }
    if url is not None:
        figures["recorded"] = recorded(url)
        figures["db_cpu_us_per_event"] = round(db_used * 1e6 / max(backlog, 1), 1)
    return figures


def recorded(url: str) -> int:
    """The events the shared index at ``url`` holds."""
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM events").fetchone()
    return int(row[0]) if row else 0


def check(local: dict[str, Any], shared: dict[str, Any]) -> None:
    """A run that did not do the work is no measure: every event processed, the same
    duplicates found with the database as without, every event in the database."""
    for mode, run in (("local", local), ("shared", shared)):
        if run["events"] <= 0:
            raise RuntimeError(f"{mode}: the worker processed nothing")
    if local["duplicates"] != shared["duplicates"]:
        raise RuntimeError(
            f"duplicates: {local['duplicates']} with the local index alone,"
            f" {shared['duplicates']} with the shared index"
        )
    if shared.get("recorded") != shared["backlog"]:
        raise RuntimeError(
            f"the shared index holds {shared.get('recorded')} of {shared['backlog']} events"
        )


def summary(runs: dict[str, list[dict[str, Any]]], events: int) -> dict[str, Any]:
    """Each mode's median round (with every round's rate), and shared ÷ local."""
    local, shared = (report.median_run([{**r, "rps": r["eps"]} for r in runs[m]]) for m in MODES)
    for kept in (local, shared):
        kept["rounds_eps"] = kept.pop("rounds_rps")
        del kept["rps"]
    return {
        "events": events,
        "rounds": len(runs["local"]),
        "local": local,
        "shared": shared,
        "ratio": report.ratio(shared["eps"], local["eps"]),
        "cpu_ratio": report.ratio(local["cpu_us_per_event"], shared["cpu_us_per_event"]),
        "round_ratios": [
            report.ratio(s["eps"], lo["eps"])
            for lo, s in zip(runs["local"], runs["shared"], strict=True)
        ],
    }


def measure(
    config: Config, broker: str, server: PostgresServer, *, events: int, rounds: int
) -> dict[str, Any]:
    """The step: a journal of ``events`` events, then ``rounds`` rounds of both modes, on the
    broker at ``broker`` and, for the shared index, a database of each run's own on
    ``server``."""
    work = config.workdir / "shared-index"
    template = work / "journal"
    template.mkdir(parents=True)
    journal_only(template, events)
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in MODES}
    for r in range(rounds):
        done: dict[str, dict[str, Any]] = {}
        for mode in order(r):
            db = server if mode == "shared" else None
            done[mode] = one_run(config, template, work, broker, db, f"{mode}_{r}")
            log.info(
                "shared index, round %d, %s: %.0f events/s, %.0f µs CPU/event",
                r + 1,
                mode,
                done[mode]["eps"],
                done[mode]["cpu_us_per_event"],
            )
        check(done["local"], done["shared"])
        for mode in MODES:
            runs[mode].append(done[mode])
    shutil.rmtree(work, ignore_errors=True)
    return summary(runs, events)
