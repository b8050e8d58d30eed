"""The console's pages on the lookup step's data (``bench.lookup``): how long the hub takes to
answer each with its whole HTML, the page's handler, read model and template included.

The hub (``hub.app.create_app``: the pipeline worker in its loop, no broker, so it only indexes
what the journal gains: nothing here) is served on loopback by aiohttp's test server on the
step's data directory, and asked each page in turn as an operator (the bearer token), one request
at a time: the events page (its first page unfiltered, and filtered by a phone number typed in
its national form, one in 20 the busy number), a random message's page and the overview. Wall
time of each request, answer read whole, in milliseconds: p50, p99 and max per page, and the
slowest page's p99 (the ``console_pages`` target: under a second).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp.test_utils import TestClient, TestServer

from hub.app import create_app
from hub.settings import Settings


def paths(messages: list[tuple[str, str]], numbers: list[str], count: int) -> dict[str, list[str]]:
    """Each page's addresses, ``count`` of them: the messages' pages and the phone searches of
    the given ones (in turn), the unfiltered events page and the overview, the same each time."""
    return {
        "events": ["/console/events"] * count,
        "events_phone": [
            f"/console/events?{urlencode({'phone': numbers[i % len(numbers)]})}"
            for i in range(count)
        ],
        "message": [
            f"/console/messages/{p}/{m}"
            for p, m in (messages[i % len(messages)] for i in range(count))
        ],
        "overview": ["/console/overview"] * count,
    }


def timed_pages(data_dir: Path, pages: dict[str, list[str]]) -> dict[str, Any]:
    """Each page's wall times (ms: count, p50, p99, max) and the slowest p99."""
    found = asyncio.run(_served(data_dir, pages))
    found["slowest_p99_ms"] = max(t["p99_ms"] for t in found.values())
    return found


async def _served(data_dir: Path, pages: dict[str, list[str]]) -> dict[str, Any]:
    token = secrets.token_urlsafe(24)  # the console's, for this run only
    settings = Settings(data_dir=data_dir, forwarder="inline", console_token=token)
    headers = {"Authorization": f"Bearer {token}"}
    found: dict[str, Any] = {}
    async with TestClient(TestServer(create_app(settings))) as client:
        for name, addresses in pages.items():
            wall = []
            for address in addresses:
                began = time.perf_counter()
                async with client.get(address, headers=headers, allow_redirects=False) as answer:
                    body = await answer.read()
                    if answer.status != 200:
                        raise RuntimeError(f"{address}: HTTP {answer.status}")
                    if name.startswith("events") and b'<tr data-seq="' not in body:
                        raise RuntimeError(f"{address}: no event shown")  # a page of nothing
                wall.append(time.perf_counter() - began)
            found[name] = {
                "count": len(wall),
                "p50_ms": ms(wall, 0.5),
                "p99_ms": ms(wall, 0.99),
                "max_ms": ms(wall, 1.0),
            }
    return found


def ms(seconds: list[float], rank: float) -> float:
    """The ``rank`` quantile (0.5, 0.99, 1.0: the max) of ``seconds``, in milliseconds."""
    ordered = sorted(seconds)
    return round(ordered[round(rank * (len(ordered) - 1))] * 1000, 3)
