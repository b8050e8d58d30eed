"""What a benchmark run sends and runs: the two request styles, the run's settings, a server
under test, and the command lines and process helpers of the steps (``bench/run.py``)."""

from __future__ import annotations

import resource
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench import procs, wrk
from bench.procs import SECRET

PAYLOADS = Path(__file__).resolve().parent.parent / "parsers" / "samples"
GET = wrk.Load(
    "GET",
    f"/callbacks/isendpro/{SECRET}/delivery",
    (PAYLOADS / "isendpro/seed-delivery-report.query")
    .read_text()
    .strip()
    .replace("&id=35986&", "&id={id}&"),
)
POST = wrk.Load(
    "POST",
    f"/callbacks/dmc/{SECRET}/cra",
    (PAYLOADS / "dmc/seed-sms-sent.body")
    .read_text()
    .replace('call_id="10020008248118"', 'call_id="{id}"'),
    "text/xml; charset=UTF-8",
)
STYLES = {"get": GET, "post": POST}
FORWARD = [sys.executable, "-m", "bench.forward"]


@dataclass(frozen=True)
class Config:
    seconds: float
    """Length of one wrk step (one server, one style, one round)."""
    rounds: int
    sustained: float
    outage: float
    connections: int
    server_cpu: int | None
    client_cpu: int | None
    raw_count: int
    raw_window: int
    parser_seconds: float
    workdir: Path
    lookup_events: int = 1_000_000
    """Events indexed for the read model's lookups (``bench/lookup.py``)."""
    lookups: int = 300
    """Lookups of each kind."""
    under_load_seconds: float = 10.0
    """Length of one run of the callbacks-under-lookups step (``bench/contention.py``)."""
    under_load_rounds: int = 3
    read_model_only: bool = False
    """Only the read model's steps (lookups, pages, callbacks under lookups): no broker."""
    shared_events: int = 50_000
    """Events the pipeline worker processes in each run of the shared index step
    (``bench/shared.py``)."""
    shared_rounds: int = 3
    shared_index_only: bool = False
    """Only the shared index step (a RabbitMQ node and a PostgreSQL server, no wrk)."""


@dataclass
class Server:
    name: str
    port: int
    pid: int
    data_dir: Path | None = None
    """The hub's data directory (None for the references)."""
    broker: bool = False
    forwarder: int | None = None
    """The PID of the hub's pipeline worker (``hub forward``, with a broker or without)."""

    def rss_kib(self) -> int:
        """The hub's memory: its own process and its forwarder's."""
        pids = [self.pid] if self.forwarder is None else [self.pid, self.forwarder]
        return sum(procs.rss_kib(p) for p in pids)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def journal(self) -> Path | None:
        return self.data_dir / "journal.sqlite3" if self.data_dir else None


def hub_argv() -> list[str]:
    return [sys.executable, "-m", "hub", "serve"]


def refs_argv(kind: str, broker: str = "") -> list[str]:
    return [sys.executable, "-m", "bench.refs", kind, "{port}", *([broker] if broker else [])]


def paced(rate: float, delay_ms: int = 15, latency_ms: float = 1.0) -> tuple[int, int]:
    """Connections and per-connection delay (ms) for about ``rate`` requests/s with wrk's delay
    hook: each connection sends one request every ``delay`` ms on average (``bench.wrk.PACED``)
    plus the answer's latency."""
    connections = max(1, round(rate * (delay_ms + latency_ms) / 1000))
    return connections, delay_ms


def pinned(cpu: int | None) -> list[str]:
    """The ``taskset`` prefix that runs a command on ``cpu`` (none when not pinning)."""
    return ["taskset", "-c", str(cpu)] if cpu is not None else []


def purge(url: str) -> None:
    """Empties the queue where the events land (each broker measurement starts alike)."""
    subprocess.run([*FORWARD, "purge", url], check=True, timeout=60)  # noqa: S603 - our module


def children_cpu() -> float:
    """CPU time of the finished child processes (wrk's, once it has exited)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def size(journal: Path) -> int:
    return sum(p.stat().st_size for p in journal.parent.glob(journal.name + "*"))
