"""Writes the upgrade fixture: a data directory as a hub of the journal's first format left it.

Run once, with the code of that hub (``python -m tests.upgrade.make_fixture DIR``); the result is
kept in ``tests/upgrade/v0.1/`` and ``tests/test_upgrade.py`` starts the current hub on a copy
of it. What it holds, written through the real app (secrets from ``secrets.json``):

- iSendPro delivery reports 1 to 3, forwarded (the forwarder's cursor, ``forwarder.sqlite3``,
  past them);
- reports 4 to 6, journaled while no broker was configured: not forwarded;
- report 1 again (a provider's retry: recognized, not journaled, counted);
- one request that could not be parsed, in the quarantine.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from hub.app import create_app
from hub.secrets import resolve
from hub.settings import Settings
from sinks.memory import MemorySink
from tests.support import LOOPBACK, dlr_query, eventually, unforwarded

FORWARDED = range(1, 4)
"""Reports the fixture's broker confirmed."""
WAITING = range(4, 7)
"""Reports journaled after them, not forwarded."""
RETRIED = 1
"""The report sent again (a duplicate, not journaled)."""
BAD_QUERY = "tel=0612345678&statut=0"
"""A delivery report without its id: refused, quarantined."""


def delivery_path(data_dir: Path) -> str:
    """The iSendPro delivery URL of the fixture's secrets."""
    secret = resolve({}, data_dir)["isendpro"][0]  # type: ignore[index]
    return f"/callbacks/isendpro/{secret}/delivery"


async def write(data_dir: Path) -> None:
    settings = Settings(data_dir=data_dir, allow_ecall=LOOPBACK)
    memory = MemorySink()
    async with TestClient(TestServer(create_app(settings, sink=memory))) as client:
        path = delivery_path(data_dir)
        for i in FORWARDED:
            assert await (await client.get(f"{path}?{dlr_query(i)}")).text() == "validation"

        async def forwarded() -> bool:
            return unforwarded(data_dir) == 0

        await eventually(forwarded)
    async with TestClient(TestServer(create_app(settings))) as client:  # no broker
        for i in WAITING:
            assert await (await client.get(f"{path}?{dlr_query(i)}")).text() == "validation"
        assert await (await client.get(f"{path}?{dlr_query(RETRIED)}")).text() == "validation"
        assert await (await client.get(f"{path}?{BAD_QUERY}")).text() == "probleme"


if __name__ == "__main__":
    target = Path(sys.argv[1])
    target.mkdir(parents=True, exist_ok=False)
    asyncio.run(write(target))
    print(f"written: {sorted(p.name for p in target.iterdir())}")
