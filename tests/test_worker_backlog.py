"""How far behind the pipeline worker is, without a broker, on a real ``hub serve``: its worker
(``hub forward``, the hub's child) stopped with SIGSTOP while callbacks are acknowledged, then
let go on with SIGCONT."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import aiohttp

from tests.harness.hubproc import HubProcess
from tests.support import DLR, dlr_query, eventually, metric


async def scrape(http: aiohttp.ClientSession, hub: HubProcess) -> str:
    async with http.get(f"{hub.url}/metrics") as resp:
        return await resp.text()


async def test_without_a_broker_the_metrics_say_how_far_behind_the_worker_is(
    tmp_path: Path,
) -> None:
    hub = HubProcess(tmp_path / "data")
    stopped: int | None = None
    try:
        async with asyncio.timeout(90), aiohttp.ClientSession() as http:
            await asyncio.to_thread(hub.start)

            async def one_worker() -> bool:
                return len(hub.children()) == 1

            await eventually(one_worker)
            [worker] = hub.children()
            text = await scrape(http, hub)
            assert metric(text, "hub_worker_backlog_events") == 0
            assert metric(text, "hub_worker_oldest_unprocessed_age_seconds") == 0

            os.kill(worker, signal.SIGSTOP)  # a worker that stalls (a disk, a bug)
            stopped = worker
            for i in range(5):
                async with http.get(f"{hub.url}{DLR}?{dlr_query(i)}") as resp:
                    assert await resp.text() == "validation"  # callbacks do not wait for it
            text = await scrape(http, hub)
            assert metric(text, "hub_worker_backlog_events") == 5
            assert metric(text, "hub_journal_backlog_events") == 0  # no broker: none to forward
            first_age = metric(text, "hub_worker_oldest_unprocessed_age_seconds") or 0.0
            assert first_age > 0

            async def older() -> bool:  # the oldest waits on: its age grows
                text = await scrape(http, hub)
                age = metric(text, "hub_worker_oldest_unprocessed_age_seconds") or 0.0
                return age > first_age

            await eventually(older)

            os.kill(worker, signal.SIGCONT)
            stopped = None

            async def caught_up() -> bool:
                text = await scrape(http, hub)
                return metric(text, "hub_worker_backlog_events") == 0

            await eventually(caught_up)
            text = await scrape(http, hub)
            assert metric(text, "hub_worker_oldest_unprocessed_age_seconds") == 0
            counted = metric(text, "hub_events_total", provider="isendpro", state="delivered")
            assert counted == 5
    finally:
        if stopped is not None:
            os.kill(stopped, signal.SIGCONT)
        await asyncio.to_thread(hub.stop)
