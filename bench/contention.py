"""Callbacks while an operator looks things up: the hub's callback rate at full load with and
without lookups and console pages asked of it at the same time, and those lookups' latency.

A real hub (``hub serve`` with its pipeline worker, no broker) on the lookup step's data
directory (``bench.lookup --data-dir``: its million events indexed), its callback side pinned to
the server core, its worker to the client core with wrk, as in the HTTP rounds. wrk sends the GET
style (iSendPro delivery reports) at full rate for a bounded time, once alone and once while an
operator client (this module run as a process: ``python -m bench.contention URL DATA_DIR``,
pinned with wrk) asks the same hub over HTTP, as a browser does: a message's timeline
(``/api/v1/messages/...``), a phone-number search typed in its national form
(``/api/v1/events?phone=...``) and a console page (``/console/events``, filtered by a phone
number, a message's page, the overview, in turn), each with the console token (a bearer), on one
kept-alive connection. The two runs alternate in order from round to round, so that a noisy
round shows in both; the figure kept for each is the median round. Last, the operator alone
(no callbacks) for as long: the lookups' latency then, and the hub's CPU time per request.

The operator's pace: ``RATE`` requests a second (5: one every 200 ms, in the order timeline,
phone search, page). One person reads a page for seconds before the next click, so this is a
handful of operators busy at once: the console at its busiest, not a load test of the lookups.
The pace is kept (the next request waits for its time; a late one goes at once, no catch-up
burst).
"""

from __future__ import annotations

import argparse
import http.client
import logging
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, urlencode, urlsplit

import orjson

from bench import lookup, pages, procs, report
from bench.servers import Config, Server, hub_argv, pinned
from hub import operator

RATE = 5.0
"""The operator's requests per second."""
STYLE = "get"
KINDS = ("timeline", "phone", "page")
CLIENT = [sys.executable, "-m", "bench.contention"]

log = logging.getLogger("bench")


class Bench(Protocol):
    """What the step needs of a benchmark run (``bench.run.Run``)."""

    config: Config

    def start(
        self,
        stack: ExitStack,
        name: str,
        argv: list[str],
        *,
        data_dir: Path | None = None,
        broker: str | None = None,
        forwarder_cpu: int | None = None,
    ) -> Server: ...

    def load(self, server: Server, style: str, seconds: float, **kw: Any) -> dict[str, Any]: ...

    def settle(self, servers: list[Server], timeout: float = 60.0) -> None: ...


# -- the operator's requests ---------------------------------------------------------------------


def plan(messages: int, count: int, rng: random.Random) -> list[tuple[str, str]]:
    """``count`` cycles of the operator's requests, (kind, path): a random message's timeline, a
    phone search (a message's recipient typed in its national form, one in 20 the busy number),
    and a console page, the four in turn (events, events by phone, a message, the overview)."""
    _, ids, numbers = lookup.picks(count, messages, rng)
    console = pages.paths(ids, numbers, count)
    names = list(console)
    made: list[tuple[str, str]] = []
    for i, ((provider, message), number) in enumerate(zip(ids, numbers, strict=True)):
        made += [
            ("timeline", f"/api/v1/messages/{provider}/{quote(message)}"),
            ("phone", f"/api/v1/events?{urlencode({'phone': number})}"),
            ("page", console[names[i % len(names)]][i]),
        ]
    return made


def check(path: str, status: int, body: bytes) -> None:
    """An answer that is no measure stops the step: an error, or a search that found nothing."""
    if status != 200:
        raise RuntimeError(f"{path}: HTTP {status}")
    empty = (path.startswith("/api/v1/events") and b'"items":[]' in body) or (
        path.startswith("/console/events") and b'<tr data-seq="' not in body
    )
    if empty:
        raise RuntimeError(f"{path}: no event found")


def operate(
    base: str,
    token: str,
    requests: list[tuple[str, str]],
    rate: float,
    stop: threading.Event,
    limit: int | None = None,
) -> list[tuple[str, float]]:
    """The requests in turn (cycling), ``rate`` a second, until ``stop`` (or ``limit``
    requests): each (kind, wall ms of the request, its answer read whole)."""
    where = urlsplit(base)
    connection = http.client.HTTPConnection(where.hostname or "127.0.0.1", where.port, timeout=60)
    headers = {"Authorization": f"Bearer {token}"}
    took: list[tuple[str, float]] = []
    due = time.monotonic()
    try:
        while not stop.is_set():
            kind, path = requests[len(took) % len(requests)]
            began = time.perf_counter()
            connection.request("GET", path, headers=headers)
            answer = connection.getresponse()
            body = answer.read()
            took.append((kind, round((time.perf_counter() - began) * 1000, 3)))
            check(path, answer.status, body)
            if len(took) == limit:
                break
            due = max(due + 1 / rate, time.monotonic())
            stop.wait(due - time.monotonic())  # the operator's pace (ends early on stop)
    finally:
        connection.close()
    return took


def client(argv: list[str] | None = None) -> int:
    """The operator as a process: warms up (one request of each kind, untimed), prints
    ``ready``, asks at its pace until its stdin closes, then prints its timings (JSON)."""
    parser = argparse.ArgumentParser(prog="python -m bench.contention", description=__doc__)
    parser.add_argument("url", help="the hub's address (http://127.0.0.1:PORT)")
    parser.add_argument("data_dir", type=Path, help="the hub's data directory (its token)")
    parser.add_argument("--rate", type=float, default=RATE, help=f"requests/s ({RATE:g})")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args(argv)
    token = operator.stored(args.data_dir)
    if token is None:
        parser.error(f"no {operator.TOKEN_FILE} in {args.data_dir}: has a hub run on it?")
    messages = orjson.loads((args.data_dir / "filled.json").read_bytes())["messages"]
    requests = plan(messages, 500, random.Random(args.seed))  # noqa: S311 - synthetic picks
    stop = threading.Event()
    operate(args.url, token, requests, args.rate, stop, limit=len(KINDS))
    print("ready", flush=True)
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    began = time.monotonic()
    took = operate(args.url, token, requests[len(KINDS) :], args.rate, stop)
    print(orjson.dumps({"took": took, "seconds": round(time.monotonic() - began, 2)}).decode())
    return 0


def operated(
    url: str, data_dir: Path, rate: float, cpu: int | None, work: Callable[[], dict[str, Any]]
) -> tuple[dict[str, Any], list[tuple[str, float]]]:
    """``work()`` while the operator client asks the hub at ``url``: its result, and the
    client's timings. The client is stopped (by its PID) whatever happens."""
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [*pinned(cpu), *CLIENT, url, str(data_dir), "--rate", str(rate)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    try:
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the operator client did not start: {proc.communicate()[1]}")
        result = work()
        out, err = proc.communicate(input="", timeout=120)  # closes its stdin: stop
        if proc.returncode != 0:
            raise RuntimeError(f"the operator client failed: {err.strip()}")
        return result, [(kind, ms) for kind, ms in orjson.loads(out)["took"]]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=20)


# -- the step ------------------------------------------------------------------------------------


def order(round_number: int) -> tuple[str, str]:
    """Which run goes first in a round: alone in even rounds, with lookups in odd ones."""
    return ("alone", "with") if round_number % 2 == 0 else ("with", "alone")


def measure(
    bench: Bench, data_dir: Path, *, seconds: float, rounds: int, rate: float = RATE
) -> dict[str, Any]:
    """The step: a hub on ``data_dir`` (filled by ``bench.lookup``), ``rounds`` rounds of full
    rate GET for ``seconds`` alone and with the operator; the summary (``summary``)."""
    cpu = bench.config.client_cpu
    alone: list[dict[str, Any]] = []
    loaded: list[dict[str, Any]] = []
    took: list[tuple[str, float]] = []
    with ExitStack() as stack:
        hub = bench.start(stack, "under-load", hub_argv(), data_dir=data_dir, forwarder_cpu=cpu)
        bench.load(hub, STYLE, max(seconds / 2, 1))  # warm-up
        for r in range(rounds):
            for run in order(r):
                bench.settle([hub])
                if run == "alone":
                    figures = bench.load(hub, STYLE, seconds)
                    alone.append(figures)
                else:
                    figures, asked = operated(
                        hub.url, data_dir, rate, cpu, lambda: bench.load(hub, STYLE, seconds)
                    )
                    loaded.append({**figures, "lookups": len(asked)})
                    took += asked
                log.info(
                    "under load, round %d, %s: %.0f req/s, p99 %.2f ms, %.0f µs CPU/req,"
                    " noise %.2f", r + 1, "alone" if run == "alone" else "with lookups",
                    figures["rps"], figures["p99_ms"], figures["server_cpu_us_per_req"],
                    figures["foreign_cores"],
                )  # fmt: skip
        bench.settle([hub])
        idle, asked = operated(hub.url, data_dir, rate, cpu, lambda: quiet(hub.pid, seconds))
    return summary(alone, loaded, took, seconds=seconds, rate=rate, quiet=(idle, asked))


def quiet(pid: int, seconds: float) -> dict[str, float]:
    """The hub's CPU time over ``seconds`` with no callback (the operator alone asking)."""
    used = procs.cpu_seconds(pid)
    time.sleep(seconds)  # the measurement's window, while the operator client asks
    return {"seconds": seconds, "hub_cpu_seconds": procs.cpu_seconds(pid) - used}


def summary(
    alone: list[dict[str, Any]],
    loaded: list[dict[str, Any]],
    took: list[tuple[str, float]],
    *,
    seconds: float,
    rate: float,
    quiet: tuple[dict[str, float], list[tuple[str, float]]] | None = None,
) -> dict[str, Any]:
    """The median round of each run, the ratio of their rates (with ÷ alone), each round's
    ratio (alone and with of the same round), the ratio in CPU time (the hub's µs per callback
    alone ÷ with, the lookups' CPU included: what the rates' ratio would be if the hub had its
    core to itself, the steadier figure on a shared machine), and the lookups' p50 / p99 / max
    per kind over every run with lookups (a p99 of a few dozen is close to their max). With
    ``quiet`` (a run of the operator alone: the hub's CPU time, the timings), the lookups
    without callbacks: their timings, the hub's CPU per request, and the share of a core the
    operator's pace takes (what the callbacks would lose if the lookups cost only their CPU)."""
    kept_alone, kept_loaded = report.median_run(alone), report.median_run(loaded)
    found: dict[str, Any] = {}
    if quiet is not None and quiet[1]:
        cpu_ms = quiet[0]["hub_cpu_seconds"] * 1000 / len(quiet[1])
        found["without_callbacks"] = {
            "lookups": _kinds(quiet[1]),
            "hub_cpu_ms_per_request": round(cpu_ms, 2),
            "core_share": round(rate * cpu_ms / 1000, 3),
        }
    return {
        "style": STYLE,
        "seconds": seconds,
        "rounds": len(alone),
        "rate_per_second": rate,
        "alone": kept_alone,
        "with_lookups": kept_loaded,
        "ratio": report.ratio(kept_loaded["rps"], kept_alone["rps"]),
        "cpu_ratio": report.ratio(
            kept_alone.get("server_cpu_us_per_req"), kept_loaded.get("server_cpu_us_per_req")
        ),
        "round_ratios": [
            report.ratio(w["rps"], a["rps"]) for a, w in zip(alone, loaded, strict=True)
        ],
        "lookups": _kinds(took),
        **found,
    }


def _kinds(took: list[tuple[str, float]]) -> dict[str, Any]:
    """Per kind of request: count, p50, p99, max (ms)."""
    found: dict[str, Any] = {}
    for kind in KINDS:
        wall = [ms / 1000 for k, ms in took if k == kind]
        if wall:
            found[kind] = {
                "count": len(wall),
                "p50_ms": pages.ms(wall, 0.5),
                "p99_ms": pages.ms(wall, 0.99),
                "max_ms": pages.ms(wall, 1.0),
            }
    return found


if __name__ == "__main__":
    sys.exit(client())
