"""One benchmark run, step by step (``bench/README.md`` says what each step measures).

The machine is shared and noisy, so the servers compared are all up at once and measured in
interleaved rounds (each round: every server, every style, in a rotating order); a figure is the
median round.
"""

from __future__ import annotations

import json
import logging
import secrets
import shutil
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import contention, forward, machine, parse_speed, procs, report, shared, wrk
from bench.servers import (
    FORWARD,
    STYLES,
    Config,
    Server,
    children_cpu,
    hub_argv,
    paced,
    pinned,
    purge,
    refs_argv,
    size,
)
from tests.harness.ports import free_port
from tests.harness.postgres import PostgresServer
from tests.harness.rabbitmq import RabbitNode

__all__ = ["Config", "Run"]

log = logging.getLogger("bench")

_LATENCY = "hub_callback_duration_seconds"
_COMMITS = "hub_journal_commit_duration_seconds"
"""The hub's histograms the half-rate step reads (``sinks.metrics``)."""


@dataclass
class Run:
    config: Config
    results: dict[str, Any] = field(
        default_factory=lambda: {"http": {}, "hub_outcomes": {}, "memory": {}}
    )
    tag: str = field(default_factory=lambda: secrets.token_hex(3))
    steps: int = 0
    beam: int = 0
    """The broker's PID (its CPU time is ours, not noise)."""

    # -- wrk ---------------------------------------------------------------------------------

    def load(self, server: Server, style: str, seconds: float, **kw: Any) -> dict[str, Any]:
        """One wrk run: wrk's figures, the server's CPU time per request, and how many cores
        other processes of the machine kept busy meanwhile (the noise); for a hub, checks
        that every request was journaled (accepted)."""
        self.steps += 1
        before = self._outcomes(server)
        cpu = (
            procs.cpu_seconds(server.pid),
            self._beam_cpu(),
            children_cpu(),
            procs.cpu_seconds(server.forwarder) if server.forwarder else 0.0,
        )
        busy, started = procs.machine_busy(), time.monotonic()
        result = wrk.run(
            server.url,
            STYLES[style],
            self.config.workdir,
            prefix=f"b{self.tag}s{self.steps}",
            seconds=seconds,
            connections=kw.pop("connections", self.config.connections),
            cpu=self.config.client_cpu,
            **kw,
        )
        elapsed, busy = time.monotonic() - started, procs.machine_busy() - busy
        used = (
            procs.cpu_seconds(server.pid) - cpu[0],
            self._beam_cpu() - cpu[1],
            children_cpu() - cpu[2],
            (procs.cpu_seconds(server.forwarder) if server.forwarder else 0.0) - cpu[3],
        )
        figures = {
            **result.as_dict(),
            "server_cpu_us_per_req": round(used[0] * 1e6 / max(result.requests, 1), 1),
            "server_cores": round(used[0] / elapsed, 2),
            "foreign_cores": round(max(busy - sum(used), 0.0) / elapsed, 2),
        }
        if server.forwarder:
            figures["forwarder_cpu_us_per_req"] = round(used[3] * 1e6 / max(result.requests, 1), 1)
            figures["forwarder_cores"] = round(used[3] / elapsed, 2)
        if server.data_dir is not None:
            after = self._outcomes(server)
            counted = {k: after.get(k, 0) - before.get(k, 0) for k in after}
            key = f"{server.name}_{style}"
            totals = self.results["hub_outcomes"].setdefault(key, {})
            for k, v in counted.items():
                totals[k] = totals.get(k, 0) + v
            if counted.get("accepted", 0) < 0.99 * result.requests:
                log.warning("%s: %s for %d requests", key, counted, result.requests)
        return figures

    def _beam_cpu(self) -> float:
        try:
            return procs.cpu_seconds(self.beam) if self.beam else 0.0
        except OSError:  # the broker is stopped (outage step)
            return 0.0

    def _outcomes(self, server: Server) -> dict[str, float]:
        if server.data_dir is None:
            return {}
        return report.outcomes(procs.fetch(server.url + "/metrics"))

    def settle(self, servers: list[Server], timeout: float = 60.0) -> None:
        """Waits until the hubs' pipeline workers are idle, so that they steal no CPU from the
        next server measured."""
        deadline = time.monotonic() + timeout
        for server in servers:
            if server.journal is not None:
                while (
                    forward.pending(server.journal, broker=server.broker)
                    and time.monotonic() < deadline
                ):
                    time.sleep(0.1)

    # -- steps -------------------------------------------------------------------------------

    def parsers(self) -> None:
        """The parse path (``bench/parse_speed.py``): this code and the code before issue 16
        (extracted from the repository's history), alternated, a run each a round."""
        cfg = self.config
        old = parse_speed.before_tree(cfg.workdir / "before")
        log.info(
            "parsers: %.1f s per provider, %d runs %s",
            cfg.parser_seconds,
            cfg.rounds,
            "alternated with the code before issue 16"
            if old
            else "(no git history: the recorded figures before)",
        )
        mine: list[dict[str, Any]] = []
        before: list[dict[str, Any]] = []
        for _ in range(cfg.rounds):
            mine.append(self._parse_run(None))
            if old is not None:
                before.append(self._parse_run(old))
        self.results["parsers"] = parse_speed.combine(mine, before)

    def _parse_run(self, tree: Path | None) -> dict[str, Any]:
        """One run of ``python -m bench.parse_speed``, pinned, in ``tree`` (the code before) or
        here."""
        done = subprocess.run(  # noqa: S603 - our own module
            [
                *pinned(self.config.server_cpu),
                *[sys.executable, "-m", "bench.parse_speed", str(self.config.parser_seconds)],
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
            cwd=tree,
        )
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    def lookup(self) -> None:
        """The read model's lookups and pages, then callbacks under lookups on the same data
        directory (``bench/contention.py``), deleted afterwards (a gigabyte)."""
        cfg = self.config
        data_dir = cfg.workdir / "lookup"
        data_dir.mkdir()
        log.info(
            "read model: %d events indexed, then %d lookups each", cfg.lookup_events, cfg.lookups
        )
        done = subprocess.run(  # noqa: S603 - our own module
            [
                *pinned(cfg.server_cpu),
                *[sys.executable, "-m", "bench.lookup", "--data-dir", str(data_dir)],
                *["--events", str(cfg.lookup_events), "--lookups", str(cfg.lookups)],
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=3600,
        )
        self.results["lookup"] = json.loads(done.stdout)
        seconds, rounds = cfg.under_load_seconds, cfg.under_load_rounds
        log.info("callbacks under lookups: %d rounds of %.0f s alone and with", rounds, seconds)
        try:
            self.results["under_load"] = contention.measure(
                self, data_dir, seconds=seconds, rounds=rounds
            )
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)

    def disk(self, key: str) -> None:
        """fsync latency on the journal's file system: every batch of callbacks waits for one,
        so its tail is the floor under the hub's acknowledgement latency."""
        figures = procs.fsync_latency(self.config.workdir, max(self.config.seconds, 2))
        self.results.setdefault("disk", {})[key] = figures
        log.info("disk (%s): fsync p50 %.2f ms, p99 %.2f, max %.1f", key, figures["p50_ms"],
                 figures["p99_ms"], figures["max_ms"])  # fmt: skip

    def rounds(self, servers: list[Server]) -> None:
        """Every server, both styles, ``rounds`` times, interleaved; keeps the median rounds."""
        cfg = self.config
        for server in servers:
            for style in STYLES:
                self.load(server, style, max(cfg.seconds / 2, 1))  # warm-up
        measured: dict[str, list[dict[str, Any]]] = {}
        for r in range(cfg.rounds):
            order = servers[r % len(servers) :] + servers[: r % len(servers)]
            for style in STYLES:
                for server in order:
                    self.settle(servers)
                    figures = self.load(server, style, cfg.seconds)
                    measured.setdefault(f"{server.name}_{style}", []).append(figures)
                    log.info(
                        "round %d %s %s: %.0f req/s, p99 %.2f ms, %.0f µs CPU/req, noise %.2f",
                        r + 1,
                        server.name,
                        style,
                        figures["rps"],
                        figures["p99_ms"],
                        figures["server_cpu_us_per_req"],
                        figures["foreign_cores"],
                    )
        for key, runs in measured.items():
            self.results["http"][key] = report.median_run(runs)

    def half_rate(self, servers: list[Server]) -> None:
        """Each server at half its measured maximum: the acknowledgement's latency under normal
        load, and what a request costs then. The references (bare aiohttp, parse and answer)
        show what this machine makes of a paced load without a journal: their CPU per request
        rises at half rate too (the core idles between requests).

        wrk paces each connection (one request, then a random delay of 15 ms on average); a 2 s
        calibration run corrects the number of connections for the latency actually added to
        each cycle. For a hub, its own histograms over the measured run say how many callbacks
        it answered within 10 ms and how many of its commits took longer than 25 and 50 ms
        (each one holds every callback that comes meanwhile)."""
        for server in servers:
            for style in STYLES:
                target = self.results["http"][f"{server.name}_{style}"]["rps"] / 2
                connections, pace = paced(target)
                self.settle([server])
                trial = self.load(server, style, 2, connections=connections, pace_ms=pace)
                connections = min(max(round(connections * target / max(trial["rps"], 1)), 1), 1024)
                self.settle([server])
                before = self._histograms(server)
                figures = self.load(
                    server, style, self.config.seconds * 2, connections=connections, pace_ms=pace
                )
                after = self._histograms(server)
                self.results["http"][f"{server.name}_{style}_half"] = {
                    **figures,
                    **_tails(before, after),
                    "target_rps": target,
                    "connections": connections,
                    "delay_ms": pace,
                }
                log.info(
                    "%s %s half rate: %.0f req/s (target %.0f), p99 %.2f ms",
                    server.name,
                    style,
                    figures["rps"],
                    target,
                    figures["p99_ms"],
                )

    def _histograms(self, server: Server) -> dict[str, dict[str, float]]:
        """A hub's callback latency and commit duration histograms (none for a reference)."""
        if server.data_dir is None:
            return {}
        exposition = procs.fetch(server.url + "/metrics")
        return {name: report.buckets(exposition, name) for name in (_LATENCY, _COMMITS)}

    def raw(self, url: str) -> dict[str, float]:
        """The raw aio-pika publisher's events/s and CPU µs per event (pinned like the hub)."""
        purge(url)
        cfg = self.config
        done = subprocess.run(  # noqa: S603 - our own module
            [
                *pinned(cfg.server_cpu),
                *FORWARD,
                "raw",
                url,
                str(cfg.raw_count),
                str(cfg.raw_window),
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        )
        measured = json.loads(done.stdout)
        figures = {
            "eps": measured["events"] / measured["seconds"],
            "cpu_us_per_event": measured["cpu_seconds"] * 1e6 / measured["events"],
        }
        log.info("raw publisher: %(eps).0f events/s, %(cpu_us_per_event).0f µs CPU/event", figures)
        return figures

    def forwarder(self, node: RabbitNode, data_dir: Path) -> None:
        """A hub started on a journal filled while no broker was configured: its drain rate,
        between two runs of the raw publisher."""
        journal = data_dir / "journal.sqlite3"
        raw_before = self.raw(node.url)
        purge(node.url)
        backlog = forward.pending(journal)
        with ExitStack() as own:
            hub = self.start(
                own,
                "drain",
                hub_argv(),
                data_dir=data_dir,
                broker=node.url,
                forwarder_cpu=self.config.server_cpu,  # where the raw publisher runs
            )
            assert hub.forwarder is not None
            forwarder = hub.forwarder
            log.info("forwarder: draining %d journaled events", backlog)
            drained = forward.drain(journal, 600, lambda: procs.cpu_seconds(forwarder))
        raw_after = self.raw(node.url)
        self.results["forwarder"] = {
            "backlog": backlog,
            "events": drained.events,
            "seconds": drained.seconds,
            "eps": drained.rate,
            "cpu_us_per_event": drained.cpu_seconds * 1e6 / max(drained.events, 1),
            "raw": [raw_before, raw_after],
            "ceiling_eps": max(raw_before["eps"], raw_after["eps"]),
            "window": self.config.raw_window,
        }
        log.info(
            "forwarder: %.0f events/s, %.0f µs CPU/event",
            drained.rate,
            self.results["forwarder"]["cpu_us_per_event"],
        )

    def sustained(self, hub: Server, key: str, seconds: float) -> None:
        """GET load for ``seconds`` at full rate, the hub's RSS sampled every few seconds."""
        assert hub.journal is not None
        samples: list[tuple[float, int]] = []
        stop = threading.Event()
        started = time.monotonic()

        def sample() -> None:
            while not stop.wait(min(5.0, max(seconds / 20, 0.5))):
                samples.append((round(time.monotonic() - started, 1), hub.rss_kib()))

        before, journal_before = hub.rss_kib(), size(hub.journal)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            figures = self.load(hub, "get", seconds)
        finally:
            stop.set()
            sampler.join()
        after, journal_after = hub.rss_kib(), size(hub.journal)
        self.results["memory"][key] = {
            "seconds": seconds,
            "rps": figures["rps"],
            "p99_ms": figures["p99_ms"],
            "foreign_cores": figures["foreign_cores"],
            "before_kib": before,
            "after_kib": after,
            "max_kib": max([after, before, *(s[1] for s in samples)]),
            "samples": samples,
            "journal_before_bytes": journal_before,
            "journal_after_bytes": journal_after,
            "journal_growth_bytes": journal_after - journal_before,
            "backlog_after": forward.pending(hub.journal),
        }
        log.info("%s: %.0f req/s, RSS %d → %d KiB", key, figures["rps"], before, after)

    # -- the whole run -----------------------------------------------------------------------

    def start(
        self,
        stack: ExitStack,
        name: str,
        argv: list[str],
        *,
        data_dir: Path | None = None,
        broker: str | None = None,
        forwarder_cpu: int | None = None,
    ) -> Server:
        """A server, pinned to the server CPU; a hub's forwarder process to ``forwarder_cpu``."""
        port = free_port()
        argv = [str(port) if a == "{port}" else a for a in argv]
        env = procs.hub_env(port, data_dir, broker) if data_dir is not None else {}
        proc = stack.enter_context(
            procs.server(
                argv,
                port,
                cpu=self.config.server_cpu,
                env=env,
                log=self.config.workdir / f"{name}.log",
            )
        )
        server = Server(name, port, proc.pid, data_dir, broker is not None)
        if data_dir is not None:
            procs.wait_http(server.url + "/health/ready")
        if data_dir is not None:  # its pipeline worker, with a broker or without
            server.forwarder = procs.child(proc.pid)
            procs.pin(server.forwarder, forwarder_cpu)
        return server

    def execute(self) -> dict[str, Any]:
        cfg = self.config
        self.results["machine"] = machine.machine()
        self.results["setup"] = {
            "step_seconds": cfg.seconds,
            "rounds": cfg.rounds,
            "connections": cfg.connections,
            "wrk": "wrk -t1 --latency, unique ids per request (bench/unique.lua)",
            "server_cpu": cfg.server_cpu,
            "client_cpu": cfg.client_cpu,
            "broker_cpu": cfg.client_cpu,
            "raw_count": cfg.raw_count,
            "raw_window": cfg.raw_window,
        }
        if not (cfg.read_model_only or cfg.shared_index_only):
            self.parsers()
        if not cfg.shared_index_only:
            self.lookup()
        if cfg.read_model_only:
            return self.results
        node = RabbitNode(cfg.workdir / "rabbitmq")
        log.info("starting a throwaway RabbitMQ node")
        try:
            node.start()
            self.beam = node.beam_pid() or 0
            if self.beam:
                procs.pin(self.beam, cfg.client_cpu)
            # No consumer in the benchmark: cap the queue where the events land.
            node.rabbitmqctl(
                "set_policy", "bench-cap", r"^callback-hub\.unrouted$",
                '{"max-length": 200000}', "--apply-to", "queues",
            )  # fmt: skip
            self.shared_index(node)
            if not cfg.shared_index_only:
                self.with_broker(node)
        finally:
            node.stop()
        return self.results

    def shared_index(self, node: RabbitNode) -> None:
        """The pipeline worker's rate with the local index alone and with the shared one."""
        cfg = self.config
        log.info(
            "shared index: the worker on %d events, %d rounds, local index alone and with"
            " PostgreSQL",
            cfg.shared_events,
            cfg.shared_rounds,
        )
        with PostgresServer() as server:  # its own temporary directory, removed at the end
            assert server.pid is not None
            for pid in [server.pid, *procs.children(server.pid)]:
                procs.pin(pid, cfg.client_cpu)  # with the broker, as in the other steps
            self.results["shared_index"] = shared.measure(
                cfg, node.url, server, events=cfg.shared_events, rounds=cfg.shared_rounds
            )

    def with_broker(self, node: RabbitNode) -> None:
        cfg = self.config
        filled = cfg.workdir / "journal-only"
        with ExitStack() as stack:
            hub = self.start(
                stack,
                "hub",
                hub_argv(),
                data_dir=cfg.workdir / "hub",
                broker=node.url,
                forwarder_cpu=cfg.client_cpu,  # the broker side, with RabbitMQ and wrk
            )
            with ExitStack() as refs:
                servers = [
                    self.start(refs, "bare", refs_argv("bare")),
                    self.start(refs, "parse", refs_argv("parse")),
                    self.start(refs, "naive", refs_argv("naive", node.url)),
                    self.start(
                        refs, "journal", hub_argv(), data_dir=filled, forwarder_cpu=cfg.client_cpu
                    ),
                    hub,
                ]
                self.rounds(servers)
                self.disk("before half rate")
                self.half_rate([servers[0], servers[1], hub])
                self.disk("after half rate")
            self.forwarder(node, filled)
            self.settle([hub])
            self.sustained(hub, "sustained", cfg.sustained)
            log.info("broker outage: stopping RabbitMQ")
            node.stop()
            self.sustained(hub, "outage", cfg.outage)


def _tails(
    before: dict[str, dict[str, float]], after: dict[str, dict[str, float]]
) -> dict[str, Any]:
    """What a hub's histograms counted between two readings: the share of callbacks answered
    within 10 ms (by its own clock: from the handler's start to the answer), its commits, and
    those over 25 and 50 ms."""
    if not after:
        return {}

    def counted(name: str, le: str) -> float:
        return after[name].get(le, 0.0) - before[name].get(le, 0.0)

    answered, commits = counted(_LATENCY, "+Inf"), counted(_COMMITS, "+Inf")
    return {
        "answered_within_10ms": round(counted(_LATENCY, "0.01") / max(answered, 1.0), 4),
        "commits": int(commits),
        "commits_over_25ms": int(commits - counted(_COMMITS, "0.025")),
        "commits_over_50ms": int(commits - counted(_COMMITS, "0.05")),
    }
