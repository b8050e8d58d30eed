"""Issue 18's "done when" for eCampaign and DMC, through real processes: a real ``hub serve``
(with its pipeline worker, ``hub forward``) on a real RabbitMQ, polling the fakes of eCampaign
and DMC (``tests.fakes``, served from the test's loop on loopback). eCampaign's replies and
blacklist entries and DMC's replies each appear once: on a queue bound to ``#``, in ``hub
tail`` (from the stream), in the console's API (``GET /api/v1/events?provider=...``).

eCampaign is polled every 0.2 s (``HUB_ECAMPAIGN_PULL_INTERVAL``): its lists, whole at each call,
are read many times over while the test runs, and ``hub pull once ecampaign`` reads them once
more beside the hub. DMC allows one call a minute, which no setting lowers: the hub's first
poll at start is the one this test sees (the next would come a minute later).
"""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import orjson
import pytest

from hub.pull import state
from parsers.times import PARIS
from tests.fakes.dmc import SERVICE_ID, SERVICE_PASSWORD, SPACE_ID, FakeDmc, Reply
from tests.fakes.ecampaign import PASSWORD, USER, Entry, FakeEcampaign
from tests.harness.hubproc import HubProcess
from tests.support import CONSOLE_TOKEN, OPERATOR, eventually, run_hub, unforwarded
from tests.test_durability import subscribe, take_all

pytestmark = pytest.mark.broker


def _date(minutes_ago: float) -> str:
    when = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    return when.astimezone(PARIS).strftime("%Y-%m-%d %H:%M:%S")


def _tail(env: dict[str, str]) -> list[dict[str, object]]:
    done = run_hub("tail", "--no-follow", "-n", "100", "--json", env=env, check=True)
    return [orjson.loads(line) for line in done.stdout.splitlines()]


async def _console(hub: HubProcess, provider: str) -> list[str]:
    """The event ids the console's API lists for ``provider`` (every page)."""
    ids: list[str] = []
    cursor = None
    async with aiohttp.ClientSession() as http:
        while True:
            params = {"provider": provider, **({"cursor": cursor} if cursor else {})}
            async with http.get(f"{hub.url}/api/v1/events", params=params, headers=OPERATOR) as r:
                assert r.status == 200, await r.text()
                page = await r.json()
            ids += [item["event"]["id"] for item in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                return ids


async def test_ecampaign_and_dmc_items_reach_the_exchange_tail_and_console_once_each(
    rabbit, tmp_path: Path
):
    exchange = f"pull-{uuid.uuid4().hex[:8]}"
    queue = await subscribe(rabbit.url, exchange)
    data_dir = tmp_path / "data"
    now = datetime.now(UTC).replace(microsecond=0)
    async with FakeEcampaign() as ecampaign, FakeDmc() as dmc:
        ecampaign.reply("sms", Entry(_date(3), code="33", number="612345678", message="STOP"))
        ecampaign.reply("mail", Entry(_date(2), email="client@example.fr", message="Merci"))
        ecampaign.blacklist("sms", Entry(_date(3), code="33", number="612345678", reason="STOP"))
        dmc.queue(Reply("9001", "81001", "+33601020304", now - timedelta(minutes=2), "oui"))
        dmc.queue(Reply("9001", "81002", "+33601020305", now - timedelta(minutes=1), "STOP",
                        stop=True))  # fmt: skip
        overrides = {
            "HUB_EXCHANGE": exchange,
            "HUB_CONSOLE_TOKEN": CONSOLE_TOKEN,
            "HUB_ECAMPAIGN_USER": USER,
            "HUB_ECAMPAIGN_PASSWORD": PASSWORD,
            "HUB_ECAMPAIGN_API_URL": ecampaign.url,
            "HUB_ECAMPAIGN_PULL_INTERVAL": "0.2",
            "HUB_DMC_SERVICE_ID": SERVICE_ID,
            "HUB_DMC_SERVICE_PASSWORD": SERVICE_PASSWORD,
            "HUB_DMC_SPACE_ID": SPACE_ID,
            "HUB_DMC_API_URL": dmc.url,
        }
        hub = HubProcess(data_dir, overrides, rabbitmq_url=rabbit.url)
        try:
            async with asyncio.timeout(120):
                await asyncio.to_thread(hub.start)

                async def all_forwarded() -> bool:
                    polled = [state.load(data_dir, s).items for s in ("ecampaign", "dmc")]
                    rounds = len(ecampaign.calls) // 6
                    return (
                        polled == [3, 2]
                        and rounds >= 3  # the lists read again, and again
                        and not await asyncio.to_thread(unforwarded, data_dir)
                    )

                await eventually(all_forwarded, timeout=60)
                once = await asyncio.to_thread(
                    run_hub, "pull", "once", "ecampaign", env=hub.env, check=True
                )
                status = await asyncio.to_thread(
                    run_hub, "pull", "status", "--json", env=hub.env, check=True
                )
                calls = len(ecampaign.calls)

                async def another_round() -> bool:  # the hub's own polls after pull once's
                    return len(ecampaign.calls) >= calls + 6

                await eventually(another_round)
                on_queue = await take_all(rabbit.url, queue)
                tail = await asyncio.to_thread(_tail, hub.env)
                console = {p: await _console(hub, p) for p in ("ecampaign", "dmc")}
                assert await asyncio.to_thread(hub.terminate) == 0
        except subprocess.CalledProcessError as exc:
            raise AssertionError(f"{exc.cmd}: {exc.stdout}{exc.stderr}\n{hub.log_tail()}") from exc
        finally:
            await asyncio.to_thread(hub.stop)

    assert once.stdout.splitlines() == ["ecampaign: items: 0 new events journaled"]
    shown = {s["provider"]: s for s in orjson.loads(status.stdout)}
    assert "6 lists read" in shown["ecampaign"]["cursor"] and shown["ecampaign"]["items"] == 3
    assert "replies read up to" in shown["dmc"]["cursor"] and shown["dmc"]["items"] == 2
    documents = [orjson.loads(m.body) for m in on_queue]
    keys = sorted(m.routing_key or "" for m in on_queue)
    assert keys == [
        "dmc.sms.inbound.received",
        "dmc.sms.inbound.received",
        "ecampaign.mail.inbound.received",
        "ecampaign.sms.inbound.received",
        "ecampaign.sms.interaction.unsubscribed",
    ], "the queue bound to #"
    ids = [d["id"] for d in documents]
    assert len(set(ids)) == 5, "each item once on the queue"
    assert {d["data"]["details"]["via"] for d in documents} == {"poll"}
    assert sorted(str(d["id"]) for d in tail) == sorted(ids), "hub tail: each once"
    assert sorted(console["ecampaign"] + console["dmc"]) == sorted(ids), "the console: each once"
    assert len(console["dmc"]) == 2 and len(console["ecampaign"]) == 3
    texts = sorted(d["data"].get("text") or "" for d in documents)
    assert texts == ["", "Merci", "STOP", "STOP", "oui"]  # the blacklist entry has no text
    assert [c.answered for c in dmc.calls] == ["list"], "DMC: one call, within its minute"
    log = hub.log_file.read_text()
    assert PASSWORD not in log and SERVICE_PASSWORD not in log
