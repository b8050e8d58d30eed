"""The broker side: the raw publisher (the ceiling) and the forwarder's drain of a journal.

``python -m bench.forward raw URL COUNT WINDOW`` publishes COUNT CloudEvents documents with plain
aio-pika (persistent, mandatory, publisher confirms, WINDOW publishes in flight at any time) to
the hub's exchange, under the hub's loop policy, and prints ``{"events": n, "seconds": s}``.
``python -m bench.forward purge URL`` empties the unrouted queue (where the events land: the
benchmark binds no queue of its own).
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aio_pika
import orjson

from bench.refs import install_uvloop
from core.models import Envelope
from core.topics import DEFAULT_EXCHANGE
from parsers import REGISTRY
from sinks import index, progress
from sinks.rabbitmq import declare_topology, to_message, unrouted_name
from tests.golden import load_case

PAYLOADS = Path(__file__).resolve().parent.parent / "parsers" / "samples"


def sample_envelopes() -> list[Envelope]:
    """The events of the two benchmarked seeds (iSendPro delivery report, DMC SMS sent)."""
    cases = [PAYLOADS / "isendpro/seed-delivery-report.json", PAYLOADS / "dmc/seed-sms-sent.json"]
    envelopes = []
    for path in cases:
        case = load_case(path)
        envelopes += [Envelope.of(e) for e in REGISTRY[case.provider].parse(case.request())]
    return envelopes


async def raw_publish(url: str, count: int, window: int) -> tuple[float, float]:
    """Seconds (wall, CPU) to publish ``count`` messages with ``window`` unconfirmed at most."""
    envelopes = sample_envelopes()
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await declare_topology(channel, DEFAULT_EXCHANGE)
        slots = asyncio.Semaphore(window)
        failures: list[BaseException] = []

        async def one(envelope: Envelope) -> None:
            try:
                await exchange.publish(
                    to_message(envelope),  # the hub's own messages: same properties
                    envelope.routing_key,
                    mandatory=True,
                )
            except Exception as exc:  # counted, reported after the run
                failures.append(exc)
            finally:
                slots.release()

        started, cpu = time.perf_counter(), time.process_time()
        tasks = set()
        for i in range(count):
            await slots.acquire()
            task = asyncio.ensure_future(one(envelopes[i % len(envelopes)]))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    if failures:
        raise RuntimeError(f"{len(failures)} publishes failed, first: {failures[0]!r}")
    return seconds, cpu


async def purge(url: str) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        await declare_topology(channel, DEFAULT_EXCHANGE)
        queue = await channel.get_queue(unrouted_name(DEFAULT_EXCHANGE))
        await queue.purge()


def pending(journal: Path, *, broker: bool = True) -> int:
    """Events of the journal the pipeline worker has not processed yet: after its index's
    cursor, and with a broker after the forwarder's cursor."""
    uri = journal.resolve().as_uri() + "?mode=ro"
    with closing(sqlite3.connect(uri, uri=True, timeout=10)) as conn:
        (last,) = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()
    done = index.read(journal.parent).cursor
    if broker:
        forwarded = progress.read(journal.parent)
        done = min(done, forwarded.cursor if forwarded is not None else 0)
    return max(int(last) - done, 0)


@dataclass(frozen=True)
class Drain:
    events: int
    seconds: float
    cpu_seconds: float
    """The forwarder process's CPU time over the same span."""

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


def drain(journal: Path, timeout: float, cpu: Callable[[], float], interval: float = 0.05) -> Drain:
    """Watches the backlog from its first decrease to zero: the forwarder's rate, undisturbed
    by the hub's start and the broker connection. ``cpu`` reads the forwarder's CPU time."""
    deadline = time.monotonic() + timeout
    initial = pending(journal)
    first: tuple[float, int, float] | None = None
    while time.monotonic() < deadline:
        now, left, used = time.perf_counter(), pending(journal), cpu()
        if first is None and left < initial:
            first = (now, left, used)
        if first is not None and left == 0:
            return Drain(first[1], now - first[0], used - first[2])
        time.sleep(interval)
    raise RuntimeError(f"backlog not drained in {timeout}s ({pending(journal)} of {initial} left)")


def main(argv: list[str]) -> None:
    install_uvloop()
    if argv[0] == "purge":
        asyncio.run(purge(argv[1]))
        return
    url, count, window = argv[1], int(argv[2]), int(argv[3])
    seconds, cpu = asyncio.run(raw_publish(url, count, window))
    doc = {"events": count, "seconds": seconds, "cpu_seconds": cpu, "at": _now()}
    print(orjson.dumps(doc).decode())


def _now() -> str:
    return datetime.now(UTC).isoformat()


if __name__ == "__main__":
    main(sys.argv[1:])
