"""The shared index away, as an operator sees it: the hub stays ready and acknowledges
callbacks (they wait in its journal, as during a broker outage), and ``/api/v1/status``, the
console's overview, ``/metrics`` and ``hub check`` say the database is away and how many events
wait; once it is back they say so too, nothing waiting. A hub on a real throwaway PostgreSQL
(``tests.harness.postgres``), its worker inline.

In CI (``CI=true``, or ``HUB_REQUIRE_BROKER=1`` as ``make test`` sets) these fail when
PostgreSQL cannot start; elsewhere they skip, saying why (``postgres`` in ``tests.conftest``)."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from hub.app import create_app
from hub.cli.check import _shared_index
from tests.support import (
    DLR,
    OPERATOR,
    dlr_query,
    eventually,
    get_raw,
    make_settings,
    metric,
)


async def _status(client: Any) -> dict[str, Any]:
    answer = await client.get("/api/v1/status", headers=OPERATOR)
    assert answer.status == 200
    doc: dict[str, Any] = await answer.json()
    return doc


async def _overview(client: Any) -> str:
    answer = await client.get("/console/overview", headers=OPERATOR)
    assert answer.status == 200
    return str(await answer.text())


async def test_the_database_away_is_said_everywhere_and_the_hub_stays_ready(
    aiohttp_client, postgres, database, tmp_path
) -> None:
    settings = make_settings(tmp_path, index_url=database, index_timeout=1.0)
    client = await aiohttp_client(create_app(settings))
    base = str(client.make_url("")).rstrip("/")
    assert await (await get_raw(client, f"{DLR}?{dlr_query(1)}")).read() == b"validation"

    async def shared_is(connected: bool, waiting: int) -> bool:
        doc = await _status(client)
        return doc["shared_index"] == {
            "configured": True,
            "connected": connected,
            "waiting_events": waiting,
        }

    await eventually(lambda: shared_is(True, 0))
    assert re.search(r'id="shared-index">connected<', await _overview(client))
    checked = await asyncio.to_thread(_shared_index, settings, base, 10)
    assert checked.ok and "connected" in checked.what
    postgres.stop()
    try:
        answer = await get_raw(client, f"{DLR}?{dlr_query(2)}")
        assert await answer.read() == b"validation"  # acknowledged: it waits in the journal
        await eventually(lambda: shared_is(False, 1))
        ready = await client.get("/health/ready")
        assert ready.status == 200  # as while the broker is away
        text = await _overview(client)
        assert re.search(r'id="shared-index">unreachable<', text)
        assert "1 events wait in the journal until the database is back" in text
        exposition = await (await client.get("/metrics")).text()
        assert metric(exposition, "hub_shared_index_connected") == 0
        checked = await asyncio.to_thread(_shared_index, settings, base, 10)
        assert not checked.ok and "events wait in the journal" in checked.what
    finally:
        postgres.start()
    await eventually(lambda: shared_is(True, 0))  # back: caught up, said
    assert "every event recorded" in await _overview(client)


async def test_a_hub_without_a_shared_index_says_none(aiohttp_client, tmp_path) -> None:
    client = await aiohttp_client(create_app(make_settings(tmp_path)))
    doc = await _status(client)
    assert doc["shared_index"] == {"configured": False, "connected": None, "waiting_events": 0}
    assert 'id="shared-index"' not in await _overview(client)
    base = str(client.make_url("")).rstrip("/")
    checked = await asyncio.to_thread(_shared_index, make_settings(tmp_path), base, 10)
    assert checked.ok and checked.what == "shared index: none (this hub's own index alone)"
