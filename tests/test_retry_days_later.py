"""A provider's retry days later, through real processes: a real ``hub serve`` (with its pipeline
worker, ``hub forward``) on a real RabbitMQ with the stream on, the user's commands run as a user
runs them.

The data directory's journal already holds the first callback, received days ago. It is written
by the journal's own code (``tests.support.write_journal``: ``Journal.append``, then the worker's
index, as a hub without a broker would have left it), from the event the iSendPro parser makes
of the callback when its request is received then: the reception time is the one thing moved
back, and it is moved where the hub itself takes it, the ``RawRequest``'s ``received_at``. The
other way, a hub journaling it and its reception time shifted afterwards, would mean rewriting
the journal's rows behind its back (the hub has no clock to set). The hub, started with a
broker, forwards that first event as its backlog; then the provider sends the same callback
again, over HTTP.

Within ``HUB_DEDUP_WINDOW`` (7 days by default; 3 days here), the retry is answered as any
callback (``validation``) and gives no second event anywhere: on a queue bound to ``#``, in the
stream, in ``hub tail`` (from the stream and from the journal), in ``hub replay``; ``/metrics``
counts one event and one duplicate. Past the window (8 days), the same steps give a second
event everywhere: what the first case checks can fail.
"""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aio_pika
import aiohttp
import orjson
import pytest
from aio_pika.abc import AbstractIncomingMessage

from core.models import Provider, RawRequest
from hub import journaled
from hub.settings import Settings
from parsers import isendpro
from sinks import journal as store
from sinks import stream as stream_reading
from sinks.journal import DAY
from sinks.rabbitmq import stream_name
from tests.harness.hubproc import HubProcess
from tests.support import DLR, dlr_query, eventually, run_hub, unforwarded, write_journal
from tests.test_durability import scrape, subscribe, take_all

MESSAGE = 35986
"""The delivery report's message id (``dlr_query``)."""


def first_callback(days: float) -> RawRequest:
    """The callback as the hub receives it (``hub.handlers.raw_request``), ``days`` ago."""
    return RawRequest(
        provider=Provider.ISENDPRO,
        callback="delivery",
        method="GET",
        query=dlr_query(MESSAGE).encode(),
        received_at=datetime.now(UTC) - timedelta(days=days),
    )


def metric_sum(text: str, name: str) -> float:
    """The sum of every sample of ``name`` (all labels) in a Prometheus exposition."""
    total = 0.0
    for line in text.splitlines():
        sample, _, value = line.rpartition(" ")
        if sample == name or sample.startswith(name + "{"):
            total += float(value)
    return total


async def stream_ids(url: str, exchange: str) -> list[str]:
    """The ``message_id`` of every message in the exchange's stream, in offset order."""
    ids: list[str] = []

    def keep(message: AbstractIncomingMessage) -> None:
        ids.append(message.message_id or "")

    connection = await aio_pika.connect(url)
    async with connection, stream_reading.opened(connection, stream_name(exchange)) as stream:
        assert stream is not None, "the hub declared its stream"
        end = await stream_reading.last_offset(stream)
        if end is not None:
            await stream_reading.scan(stream, 0, end, keep)
    return ids


def tail(env: dict[str, str]) -> list[str]:
    """``hub tail --no-follow --json``: the message ids of the events it shows."""
    done = run_hub("tail", "--no-follow", "-n", "50", "--json", env=env, check=True)
    return [orjson.loads(line)["data"]["message_id"] for line in done.stdout.splitlines()]


@pytest.mark.broker
@pytest.mark.parametrize(
    ("days", "copies"),
    [(3, 1), (8, 2)],
    ids=["3-days-later-within-the-window", "8-days-later-past-the-window"],
)
async def test_a_provider_retry_days_later(rabbit, tmp_path: Path, days: int, copies: int):
    window = Settings().dedup_window
    assert window == 7 * DAY, "the default window (HUB_DEDUP_WINDOW unset)"
    data_dir = tmp_path / "data"
    [first] = isendpro.parse(first_callback(days))
    await asyncio.to_thread(write_journal, data_dir, [first])
    assert journaled.processed(data_dir) == 1
    exchange = f"retry-{uuid.uuid4().hex[:8]}"
    queue = await subscribe(rabbit.url, exchange)
    hub = HubProcess(data_dir, {"HUB_EXCHANGE": exchange}, rabbitmq_url=rabbit.url)
    try:
        async with asyncio.timeout(120):
            await asyncio.to_thread(hub.start)

            async def forwarded(seq: int) -> bool:
                last = store.last_seq(data_dir / store.JOURNAL_FILE)
                return (
                    last == seq
                    and journaled.processed(data_dir) == seq
                    and not (await asyncio.to_thread(unforwarded, data_dir))
                )

            await eventually(lambda: forwarded(1))  # the backlog: the first callback

            async with (
                aiohttp.ClientSession() as http,
                http.get(f"{hub.url}{DLR}?{dlr_query(MESSAGE)}") as resp,
            ):
                assert (resp.status, await resp.text()) == (200, "validation")
            # the retry journaled, and processed by the worker (published, or marked duplicate)
            await eventually(lambda: forwarded(2))

            on_queue = [m.message_id for m in await take_all(rabbit.url, queue)]
            in_stream = await stream_ids(rabbit.url, exchange)
            async with aiohttp.ClientSession() as http, http.get(f"{hub.url}/metrics") as resp:
                metrics = await resp.text()
            from_stream = await asyncio.to_thread(tail, hub.env)
            journal_env = {k: v for k, v in hub.env.items() if k != "HUB_RABBITMQ_URL"}
            from_journal = await asyncio.to_thread(tail, journal_env)
            replay = await asyncio.to_thread(
                run_hub, "replay", "--since", f"{days + 1}d", env=hub.env, check=True
            )
            replayed = [m.message_id for m in await take_all(rabbit.url, queue)]
            connected = await scrape(hub, "hub_broker_connected")
    except subprocess.CalledProcessError as exc:
        raise AssertionError(f"{exc.cmd}: {exc.stdout}{exc.stderr}\n{hub.log_tail()}") from exc
    finally:
        await asyncio.to_thread(hub.stop)

    assert connected == 1
    assert on_queue == [first.id] * copies, "the queue bound to #"
    assert in_stream == [first.id] * copies, "the stream"
    assert from_stream == [str(MESSAGE)] * copies, "hub tail (from the stream)"
    assert from_journal == [str(MESSAGE)] * copies, "hub tail (from the journal)"
    assert replay.stdout.strip() == f"replayed {copies} events", "hub replay"
    assert replayed == [first.id] * copies, "what hub replay published"
    assert metric_sum(metrics, "hub_events_total") == copies
    assert metric_sum(metrics, "hub_duplicate_events_total") == 2 - copies
