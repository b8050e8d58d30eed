"""The pull sources end to end (issue 18's "done when"), through real processes: a real ``hub
serve`` (with its pipeline worker) on a real RabbitMQ, polling the fakes of eCall's buffer and
sMsmode's ``responseList.do`` (in threads). Each polled item is on a queue bound to ``#``, in
``hub tail`` (from the stream and from the journal) and in the console's API once each; and an
eCall message read twice (the hub SIGKILLed before its deletion completed) is still once
everywhere."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aio_pika
import aiohttp
import orjson
import pytest

from sinks import journal as store
from tests.fakes import ecall, smsmode
from tests.fakes.base import Running
from tests.harness.hubproc import HubProcess
from tests.support import CONSOLE_TOKEN, eventually, run_hub, unforwarded
from tests.test_durability import subscribe

pytestmark = pytest.mark.broker


@pytest.fixture
def ecall_fake() -> Iterator[tuple[ecall.FakeEcall, Running[ecall.FakeEcall]]]:
    served = ecall.FakeEcall()
    with Running(served) as running:
        yield served, running


@pytest.fixture
def smsmode_fake() -> Iterator[tuple[smsmode.FakeSmsmode, Running[smsmode.FakeSmsmode]]]:
    served = smsmode.FakeSmsmode()
    with Running(served) as running:
        yield served, running


def _sms(text: str) -> ecall.BufferedSms:
    return ecall.BufferedSms("0041766012999", "0041791234567", text, "11.12.2025 10:37:00")


def _reply(n: int) -> smsmode.Reply:
    return smsmode.Reply(f"resp-{n}", datetime.now(UTC) - timedelta(minutes=2), text=f"oui {n}")


def _overrides(exchange: str, ecall_url: str, smsmode_url: str | None = None) -> dict[str, str]:
    """The hub's variables: its exchange, the console's token, the sources on the fakes."""
    env = {
        "HUB_EXCHANGE": exchange,
        "HUB_CONSOLE_TOKEN": CONSOLE_TOKEN,
        "HUB_ECALL_USERNAME": ecall.USERNAME,
        "HUB_ECALL_PASSWORD": ecall.PASSWORD,
        "HUB_ECALL_API_URL": ecall_url,
        "HUB_ECALL_PULL_INTERVAL": "0.2",
    }
    if smsmode_url is not None:
        env.update(
            HUB_SMSMODE_ACCESS_TOKEN=smsmode.TOKEN,
            HUB_SMSMODE_API_URL=smsmode_url,
            HUB_SMSMODE_PULL_INTERVAL="0.2",
        )
    return env


class Queue:
    """The messages of a queue bound to ``#``, taken as they come (acknowledged on arrival)."""

    def __init__(self, url: str, name: str) -> None:
        self.url, self.name = url, name
        self.bodies: list[dict[str, object]] = []

    async def take(self) -> None:
        connection = await aio_pika.connect(self.url)
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue(self.name, durable=True, passive=True)
            while (message := await queue.get(no_ack=True, fail=False)) is not None:
                self.bodies.append(orjson.loads(message.body))

    def message_ids(self, provider: str) -> Counter[str]:
        return Counter(
            str(b["data"]["message_id"])  # type: ignore[index]
            for b in self.bodies
            if b["data"]["provider"] == provider  # type: ignore[index]
        )


def _tail(env: dict[str, str], provider: str) -> Counter[str]:
    """``hub tail --no-follow --json``: the message ids of one provider's events it shows."""
    done = run_hub("tail", "--no-follow", "-n", "100", "--json", env=env, check=True)
    found = [orjson.loads(line)["data"] for line in done.stdout.splitlines()]
    return Counter(d["message_id"] for d in found if d["provider"] == provider)


async def _console(hub: HubProcess, provider: str) -> Counter[str]:
    """The message ids the console's API finds for ``provider``."""
    headers = {"Authorization": f"Bearer {CONSOLE_TOKEN}"}
    url = f"{hub.url}/api/v1/events?provider={provider}&limit=100"
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        page = await resp.json()
    assert page["next_cursor"] is None
    return Counter(item["event"]["data"]["message_id"] for item in page["items"])


async def _settled(hub: HubProcess) -> bool:
    """Every journaled event processed by the worker and forwarded (or marked duplicate)."""
    data_dir = hub.data_dir
    if not (data_dir / store.JOURNAL_FILE).exists():
        return False
    return not await asyncio.to_thread(unforwarded, data_dir)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with contextlib.suppress(OSError):  # a zombie is gone too
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    return True


async def test_polled_items_are_on_the_exchange_in_tail_and_in_the_console_once_each(
    rabbit, tmp_path, ecall_fake, smsmode_fake
):
    buffer, buffered = ecall_fake
    replies, replied = smsmode_fake
    exchange = f"pull-{uuid.uuid4().hex[:8]}"
    queue = Queue(rabbit.url, await subscribe(rabbit.url, exchange))
    first = buffered.call(lambda: buffer.queue(_sms("Oui")))
    second = buffered.call(lambda: buffer.queue(_sms("Non")))
    replies.add(_reply(1), _reply(2))
    hub = HubProcess(
        tmp_path / "data",
        _overrides(exchange, buffered.api_url, replied.api_url),
        rabbitmq_url=rabbit.url,
    )
    ecall_ids = Counter({first.message_id: 1, second.message_id: 1})
    smsmode_ids = Counter({"resp-1": 1, "resp-2": 1})
    try:
        async with asyncio.timeout(120):
            await asyncio.to_thread(hub.start)

            async def all_there() -> bool:
                await queue.take()
                return (
                    queue.message_ids("ecall") == ecall_ids
                    and queue.message_ids("smsmode") == smsmode_ids
                    and await _settled(hub)
                )

            await eventually(all_there, 60)
            assert not buffered.call(lambda: list(buffer.buffer))  # emptied
            # more polls since, of the empty buffer and of windows that overlap: nothing new
            asked = (len(buffered.call(lambda: list(buffer.calls))), len(replies.calls))

            async def polled_again() -> bool:
                calls = len(buffered.call(lambda: list(buffer.calls)))
                return calls > asked[0] + 2 and len(replies.calls) > asked[1] + 2

            await eventually(polled_again)
            await eventually(lambda: _settled(hub))
            await queue.take()
            from_stream = {
                p: await asyncio.to_thread(_tail, hub.env, p) for p in ("ecall", "smsmode")
            }
            journal_env = {k: v for k, v in hub.env.items() if k != "HUB_RABBITMQ_URL"}
            from_journal = {
                p: await asyncio.to_thread(_tail, journal_env, p) for p in ("ecall", "smsmode")
            }
            console = {p: await _console(hub, p) for p in ("ecall", "smsmode")}
    except subprocess.CalledProcessError as exc:
        raise AssertionError(f"{exc.cmd}: {exc.stdout}{exc.stderr}\n{hub.log_tail()}") from exc
    finally:
        await asyncio.to_thread(hub.stop)
    expected = {"ecall": ecall_ids, "smsmode": smsmode_ids}
    assert {p: queue.message_ids(p) for p in expected} == expected, "the queue bound to #"
    assert from_stream == expected, "hub tail (from the stream)"
    assert from_journal == expected, "hub tail (from the journal)"
    assert console == expected, "the console's API"
    assert {b["data"]["details"]["via"] for b in queue.bodies} == {"poll"}  # type: ignore[index]


async def test_an_ecall_message_read_twice_across_a_crash_is_forwarded_once(
    rabbit, tmp_path, ecall_fake
):
    """The hub SIGKILLed while its DeleteMessage is held: the message, journaled and forwarded
    already, is read again after the restart, journaled again with the same id, marked
    duplicate: once on the queue, in ``hub tail`` and in the console."""
    buffer, buffered = ecall_fake
    exchange = f"pull-{uuid.uuid4().hex[:8]}"
    queue = Queue(rabbit.url, await subscribe(rabbit.url, exchange))
    buffer.hold_deletes = True
    sms = buffered.call(lambda: buffer.queue(_sms("Oui")))
    hub = HubProcess(
        tmp_path / "data", _overrides(exchange, buffered.api_url), rabbitmq_url=rabbit.url
    )
    try:
        async with asyncio.timeout(120):
            await asyncio.to_thread(hub.start)

            async def forwarded_and_deleting() -> bool:
                await queue.take()
                deleting = bool(buffered.call(buffer.deletes))
                return deleting and queue.message_ids("ecall") == Counter({sms.message_id: 1})

            await eventually(forwarded_and_deleting, 60)
            workers = hub.children()
            assert await asyncio.to_thread(hub.kill) == -9
            for pid in workers:  # killed with it, or it noticed and stopped
                await eventually(lambda pid=pid: asyncio.to_thread(_gone, pid))
            assert buffered.call(lambda: list(buffer.buffer)) == [sms]
            buffer.hold_deletes = False
            await asyncio.to_thread(hub.start)

            async def deleted_and_settled() -> bool:
                empty = not buffered.call(lambda: list(buffer.buffer))
                return empty and await _settled(hub)

            await eventually(deleted_and_settled, 60)
            await queue.take()
            shown = await asyncio.to_thread(_tail, hub.env, "ecall")
            console = await _console(hub, "ecall")
    finally:
        await asyncio.to_thread(hub.stop)
    rows = store.select(hub.data_dir / store.JOURNAL_FILE, limit=10)
    assert [r.event().data.message_id for r in rows] == [sms.message_id] * 2  # read twice
    once = Counter({sms.message_id: 1})
    assert queue.message_ids("ecall") == once, "the queue bound to #"
    assert shown == once, "hub tail"
    assert console == once, "the console's API"
