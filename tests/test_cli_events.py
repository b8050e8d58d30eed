"""``hub tail`` and ``hub replay`` as a user runs them: on the journal and on a real broker,
bounded (``--no-follow``, ``-n``, ``--pattern``), and failing at once on a broker that is not
there. Each command runs in a process of its own, bounded by a timeout."""

from __future__ import annotations

import asyncio
import queue
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from core.models import Envelope, Event
from hub.cli.common import when
from hub.cli.subscribe import _from
from sinks.rabbitmq import RabbitMQSink, StreamRetention
from tests.harness.ports import free_port
from tests.support import clean_env, event, run_hub, write_journal

FAILED = "*.*.delivery.failed"


def events() -> list[Event]:
    """Eight delivery reports, two of them failures (the 2nd and the 3rd): a pattern for
    failures finds few, early ones."""
    return [event(n, statut="1" if n in (2, 3) else "0") for n in range(1, 9)]


def ids(stdout: str) -> list[str]:
    return [orjson.loads(line)["data"]["message_id"] for line in stdout.splitlines()]


def tail(*args: str, env: dict[str, str]) -> list[str]:
    proc = run_hub("tail", "--no-follow", "--json", *args, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return ids(proc.stdout)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    env = clean_env(tmp_path / "data")
    write_journal(tmp_path / "data", events())
    return env


def test_tail_on_the_journal_applies_pattern_and_count(env) -> None:
    assert tail("-n", "3", env=env) == ["6", "7", "8"]
    assert tail("-n", "0", env=env) == []
    assert tail("-n", "1", "--pattern", FAILED, env=env) == ["3"]
    assert tail("-n", "5", "--pattern", FAILED, env=env) == ["2", "3"]
    assert tail("--pattern", "dmc.#", env=env) == []
    refused = run_hub("tail", "--pattern", "a..b", env=env)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr


def test_replay_since_takes_durations_and_days(env) -> None:
    def replayed(*args: str) -> str:
        proc = run_hub("replay", "--dry-run", *args, env=env)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()

    assert replayed("--since", "2h") == "would replay 8 events"
    assert replayed("--since", "yesterday") == "would replay 8 events"
    assert replayed("--until", "2h") == "would replay 0 events"
    assert replayed("--since", "2999-01-01") == "would replay 0 events"
    refused = run_hub("replay", "--dry-run", "--since", "last week", env=env)
    assert refused.returncode == 2
    assert "expected an ISO 8601 time, a duration ago" in refused.stderr


def test_one_reading_of_times_for_replay_and_subscribe() -> None:
    now = datetime(2026, 3, 4, 15, 30, tzinfo=UTC)
    assert when("yesterday", now) == datetime(2026, 3, 3, tzinfo=UTC)
    assert when("today", now) == datetime(2026, 3, 4, tzinfo=UTC)
    assert when("90m", now) == datetime(2026, 3, 4, 14, tzinfo=UTC)
    assert when("2026-03-01T10:00:00", now) == datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert isinstance(_from("yesterday"), datetime)
    assert _from("first") == "first" and _from("42") == 42


def test_tail_and_replay_on_a_broker_that_is_not_there_fail_at_once(env) -> None:
    dead = {**env, "HUB_RABBITMQ_URL": f"amqp://guest:guest@127.0.0.1:{free_port()}/"}
    for command in (["tail"], ["tail", "--no-follow"], ["replay"]):
        proc = run_hub(*command, env=dead, timeout=30)
        assert proc.returncode == 1, command
        [line] = proc.stderr.splitlines()  # one line, and no traceback
        assert line.startswith(f"hub {command[0]}: cannot reach the broker")
        assert "guest:guest" not in proc.stderr


# -- on a real broker -------------------------------------------------------------------------


def publish(url: str, exchange: str, batch: list[Event], *, stream: bool = True) -> None:
    async def send() -> None:
        sink = RabbitMQSink(url, exchange=exchange, stream=StreamRetention() if stream else None)
        sink.start()
        try:
            async with asyncio.timeout(30):
                await sink.wait_connected()
            await sink.publish([Envelope.of(e) for e in batch])
        finally:
            await sink.close()

    asyncio.run(send())


@pytest.mark.broker
def test_tail_on_the_broker_reads_the_stream_within_bounds(env, rabbit, exchange_name) -> None:
    publish(rabbit.url, exchange_name, events())
    env = {**env, "HUB_RABBITMQ_URL": rabbit.url, "HUB_EXCHANGE": exchange_name}
    assert tail("-n", "3", env=env) == ["6", "7", "8"]
    assert tail("-n", "1", "--pattern", FAILED, env=env) == ["3"]
    assert tail("-n", "5", "--pattern", FAILED, env=env) == ["2", "3"]
    assert tail("-n", "0", env=env) == []


@pytest.mark.broker
def test_tail_on_a_broker_without_a_stream_says_there_is_no_history(
    env, rabbit, exchange_name
) -> None:
    publish(rabbit.url, exchange_name, events()[:1], stream=False)
    env = {**env, "HUB_RABBITMQ_URL": rabbit.url, "HUB_EXCHANGE": exchange_name}
    proc = run_hub("tail", "--no-follow", env=env, timeout=60)
    assert proc.returncode == 1
    assert f"no stream {exchange_name}.stream" in proc.stderr
    assert "Traceback" not in proc.stderr


class Following:
    """``hub tail`` running, its lines read as they come (each wait bounded); Ctrl-C ends it."""

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hub", "tail", "--json", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.out: queue.Queue[str] = queue.Queue()
        self.err: queue.Queue[str] = queue.Queue()
        self.readers = [
            threading.Thread(
                target=lambda: [self.out.put(line) for line in self.proc.stdout or ()]
            ),
            threading.Thread(
                target=lambda: [self.err.put(line) for line in self.proc.stderr or ()]
            ),
        ]
        for reader in self.readers:
            reader.start()

    def event_ids(self) -> list[str]:
        return ids(self.out.get(timeout=60))

    def said(self) -> str:
        return self.err.get(timeout=60)

    def interrupt(self) -> int:
        self.proc.send_signal(signal.SIGINT)  # Ctrl-C
        return self.proc.wait(timeout=30)

    def close(self) -> str:
        """Stops it if still running; what it said on stderr that was not read yet."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for reader in self.readers:
            reader.join(timeout=10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        rest = []
        while not self.err.empty():
            rest.append(self.err.get())
        return "".join(rest)


@pytest.mark.broker
def test_tail_on_the_broker_follows_after_the_past_events(env, rabbit, exchange_name) -> None:
    publish(rabbit.url, exchange_name, events())
    env = {**env, "HUB_RABBITMQ_URL": rabbit.url, "HUB_EXCHANGE": exchange_name}
    tailing = Following("-n", "1", "--pattern", FAILED, env=env)
    try:
        assert tailing.event_ids() == ["3"]
        publish(rabbit.url, exchange_name, [event(9), event(10, statut="1")])
        assert tailing.event_ids() == ["10"]  # 9 is no failure
        assert tailing.interrupt() == 0
    finally:
        said = tailing.close()
    assert "Traceback" not in said


@pytest.mark.broker
def test_tail_on_a_broker_without_a_stream_follows_new_events(env, rabbit, exchange_name) -> None:
    publish(rabbit.url, exchange_name, events()[:1], stream=False)
    env = {**env, "HUB_RABBITMQ_URL": rabbit.url, "HUB_EXCHANGE": exchange_name}
    tailing = Following("--pattern", FAILED, env=env)
    try:
        assert tailing.said() == "no stream on the broker: events from now on only\n"  # bound
        publish(rabbit.url, exchange_name, [event(11), event(12, statut="1")], stream=False)
        assert tailing.event_ids() == ["12"]
        assert tailing.interrupt() == 0
    finally:
        said = tailing.close()
    assert "Traceback" not in said
