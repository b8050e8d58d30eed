"""The hub as its users run it: a real `hub serve` process, `hub tail`, `hub urls`."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from core.models import Provider
from hub.app import endpoints
from hub.secrets import resolve
from sinks import journal as store
from tests.golden import PAYLOADS
from tests.harness.hubproc import HubProcess
from tests.harness.ports import free_port
from tests.support import DLR, SECRET, SEED_DLR, dlr_query, metric, run_hub, wait_until


def hub(*args: str, env: dict[str, str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return run_hub(*args, env=env, timeout=timeout, check=True)


@pytest.fixture
def hub_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update(HUB_PORT=str(free_port()), HUB_DATA_DIR=str(tmp_path / "data"))
    env.update({f"HUB_SECRET_{p.value.upper()}": SECRET for p in Provider})
    return env


@pytest.fixture
def served(hub_env: dict[str, str]) -> Iterator[str]:
    """`hub serve` on the embedded default; yields its base URL; stopped with SIGTERM."""
    server = HubProcess(Path(hub_env["HUB_DATA_DIR"]), hub_env)
    server.start()
    try:
        yield server.url
    finally:
        code = server.terminate()
    assert code == 0, server.log_tail()


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.read()


def test_serve_answers_validation_and_tail_shows_the_event(served: str, hub_env) -> None:
    assert get(f"{served}{DLR}?{SEED_DLR.decode()}") == b"validation"

    text = hub("tail", "--no-follow", env=hub_env).stdout
    assert "isendpro.sms.delivery.delivered" in text
    assert "+33612345678" in text
    assert "2012-08-12 13:07:12Z" in text

    [line] = hub("tail", "--no-follow", "--json", env=hub_env).stdout.splitlines()
    event = orjson.loads(line)
    assert event["data"]["message_id"] == "35986"
    assert event["time"] == "2012-08-12T13:07:12Z"


def test_tail_without_a_journal_says_so(hub_env) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "hub", "tail", "--no-follow"],
        env=hub_env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 1
    assert "no journal" in proc.stderr


def test_urls_lists_every_endpoint_and_agrees_with_registry_and_payloads(hub_env) -> None:
    lines = hub("urls", "--base", "https://hooks.example.com/", env=hub_env).stdout.splitlines()
    listed = {(line.split()[0], line.split()[1], line.split()[3]) for line in lines}
    expected = {
        (e.provider.value, e.callback.name, f"https://hooks.example.com{e.path(SECRET)}")
        for e in endpoints()
    }
    assert listed == expected
    assert len(lines) == len(expected)
    with_urls = {slug for slug, _, _ in listed}
    folders = {p.name for p in PAYLOADS.iterdir() if p.is_dir() and p.name != "pull"}
    assert folders <= {p.value for p in Provider}
    assert folders <= with_urls


def test_urls_without_configured_secrets_prints_the_hub_s_own(hub_env, tmp_path) -> None:
    env = {k: v for k, v in hub_env.items() if not k.startswith("HUB_SECRET_")}
    resolve({}, Path(env["HUB_DATA_DIR"]))  # what the hub does at its first start
    first = hub("urls", "--base", "https://h.example", env=env).stdout
    second = hub("urls", "--base", "https://h.example", env=env).stdout
    assert first == second
    stored = orjson.loads((Path(env["HUB_DATA_DIR"]) / "secrets.json").read_bytes())
    assert f"https://h.example/callbacks/isendpro/{stored['isendpro'][0]}/delivery" in first


# -- the journal's commands: stats, replay, quarantine ----------------------------------------


def stats_lines(env: dict[str, str]) -> dict[str, str]:
    """``hub journal stats``'s lines, by name."""
    text = hub("journal", "stats", env=env).stdout
    return dict(line.split(None, 1) for line in text.splitlines())


def test_journal_stats_without_a_broker_says_forwarding_is_off_as_metrics_do(
    served: str, hub_env
) -> None:
    """Without a broker nothing is to be forwarded: the journal keeps its events, and neither
    ``hub journal stats`` nor ``/metrics`` shows them as a backlog."""
    for i in range(3):
        assert get(f"{served}{DLR}?{dlr_query(i)}") == b"validation"
    lines = stats_lines(hub_env)
    assert lines["events"] == "3"
    assert lines["forwarding"] == "off (no broker)"
    assert lines["unforwarded"] == "0"
    assert lines["oldest_unforwarded_age_seconds"] == "- (none waits)"  # a person reads it
    assert "None" not in hub("journal", "stats", env=hub_env).stdout
    doc = orjson.loads(hub("journal", "stats", "--json", env=hub_env).stdout)
    assert (doc["forwarding"], doc["unforwarded"]) == (False, 0)
    assert doc["oldest_unforwarded_age_seconds"] is None
    exposition = get(f"{served}/metrics").decode()
    assert metric(exposition, "hub_journal_backlog_events") == 0
    assert metric(exposition, "hub_journal_oldest_unforwarded_age_seconds") == 0


def test_journal_stats_with_a_broker_away_counts_the_backlog_metrics_count(
    tmp_path: Path, hub_env
) -> None:
    """A broker configured but not there: every event waits, and both say how many."""
    env = {**hub_env, "HUB_RABBITMQ_URL": f"amqp://guest:guest@127.0.0.1:{free_port()}/"}
    server = HubProcess(Path(env["HUB_DATA_DIR"]), env)
    server.start()
    try:
        for i in range(3):
            assert get(f"{server.url}{DLR}?{dlr_query(i)}") == b"validation"
        lines = stats_lines(env)
        assert (lines["forwarding"], lines["unforwarded"]) == ("on", "3")
        assert float(lines["oldest_unforwarded_age_seconds"]) >= 0
        exposition = get(f"{server.url}/metrics").decode()
        assert metric(exposition, "hub_journal_backlog_events") == 3
    finally:
        code = server.terminate()
    assert code == 0, server.log_tail()


def test_journal_stats_replay_and_quarantine_commands(served: str, hub_env, rabbit) -> None:
    """What an operator does: look at the journal, find a refused request, publish again."""
    import asyncio

    import aio_pika

    for i in range(3):
        assert get(f"{served}{DLR}?{dlr_query(i)}") == b"validation"
    assert get(f"{served}{DLR}?{dlr_query(0)}") == b"validation"  # a retry
    assert get(f"{served}{DLR}?statut=0&tel=0612345678&date=never&heure=10:00:00") == b"probleme"

    def stats_now() -> dict:
        return orjson.loads(hub("journal", "stats", "--json", env=hub_env).stdout)

    # the retry is journaled; the pipeline worker marks it duplicate after the answer
    wait_until(lambda: stats_now()["duplicates"] == 1, failure=lambda: str(stats_now()))
    stats = stats_now()
    assert (stats["events"], stats["duplicates"], stats["quarantined"]) == (3, 1, 1)
    assert (stats["forwarding"], stats["unforwarded"]) == (False, 0)  # no broker: none to send

    listing = hub("quarantine", "list", env=hub_env).stdout
    assert "bad_timestamp" in listing and "isendpro" in listing
    number = listing.split()[0]
    shown = hub("quarantine", "show", number, env=hub_env).stdout
    assert "date=never" in shown
    still = subprocess.run(
        [sys.executable, "-m", "hub", "quarantine", "replay", number],
        env=hub_env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert still.returncode == 3 and "still refused (bad_timestamp)" in still.stdout

    assert (
        hub("replay", "--dry-run", "--provider", "dmc", env=hub_env).stdout.strip()
        == "would replay 0 events"
    )
    exchange = f"replay-{os.getpid()}"
    broker_env = {**hub_env, "HUB_RABBITMQ_URL": rabbit.url, "HUB_EXCHANGE": exchange}

    async def bound_queue():
        connection = await aio_pika.connect(rabbit.url)
        channel = await connection.channel()
        from sinks.rabbitmq import declare_topology

        exchange_ = await declare_topology(channel, exchange)
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(exchange_, "isendpro.#")
        return connection, queue

    async def scenario() -> list[str]:
        connection, queue = await bound_queue()
        async with connection:
            out = await asyncio.to_thread(hub, "replay", "--provider", "isendpro", env=broker_env)
            assert out.stdout.strip() == "replayed 3 events"
            ids = []
            while (message := await queue.get(no_ack=True, fail=False)) is not None:
                ids.append(message.message_id)
            return ids

    replayed = asyncio.run(scenario())
    rows = store.select(Path(hub_env["HUB_DATA_DIR"]) / store.JOURNAL_FILE)
    assert len(rows) == 4  # the retry is journaled too, and never replayed
    assert replayed == [s.envelope.id for s in rows[:3]]
