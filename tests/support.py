"""Small helpers shared by the tests."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from yarl import URL

from core.models import Event, Provider
from hub.settings import Settings
from sinks.journal import Journal

PAYLOADS = Path(__file__).parent / "payloads"
SEED_DLR = (PAYLOADS / "isendpro" / "seed-delivery-report.query").read_bytes()
SEED_REPLY = (PAYLOADS / "isendpro" / "seed-reply.query").read_bytes()
SECRET = "test-secret-0123456789"
"""The callback secret of every provider in the tests' settings."""
DLR = f"/callbacks/isendpro/{SECRET}/delivery"
REPLY = f"/callbacks/isendpro/{SECRET}/reply"


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Settings on a throwaway data directory, every provider's secret being ``SECRET``."""
    secrets = {f"secret_{p.value}": SECRET for p in Provider}
    return Settings(data_dir=data_dir, **{**secrets, "allow_ecall": LOOPBACK, **overrides})


LOOPBACK = "127.0.0.0/8,::1"
"""eCall's callbacks are refused from anywhere but its own addresses by default: tests add
loopback, as an operator would add a test host."""


def hub_env() -> dict[str, str]:
    """The environment a test gives a real ``hub serve`` process: secrets, loopback allowed."""
    env = {f"HUB_SECRET_{p.value.upper()}": SECRET for p in Provider}
    env["HUB_ALLOW_ECALL"] = LOOPBACK
    return env


def dlr_query(message_id: int, *, statut: str = "0") -> str:
    """A distinct iSendPro delivery report (its own id, so its own event)."""
    return (
        f"tel=0612345678&statut={statut}&code_erreur=000&date=2024-05-01&heure=10:00:00"
        f"&id={message_id}&operateur=SFR&tracker=t{message_id}"
    )


def raw_url(client: Any, path_and_query: str) -> URL:
    """The test server's URL for a path and query sent exactly as given.

    aiohttp's client re-quotes URLs (``%a%`` becomes ``%25a%25``), which would change what a
    provider really sends: pass this to ``client.session.request`` instead.
    """
    base = str(client.make_url("/")).rstrip("/")
    return URL(base + path_and_query, encoded=True)


async def get_raw(client: Any, path_and_query: str) -> Any:
    """GET exactly this path and query (see :func:`raw_url`)."""
    return await client.session.get(raw_url(client, path_and_query))


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 30.0) -> None:
    """Waits until ``check()`` is true, polling; fails after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.05)


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in a Prometheus exposition, or None when absent."""
    for line in text.splitlines():
        match = re.fullmatch(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(match.group(3))
    return None


def run_hub(
    *args: str, env: dict[str, str], timeout: float = 30, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """The ``hub`` command in a process of its own, as a user runs it (its exit code is the
    caller's to check); ``timeout`` bounds a command that would hang."""
    return subprocess.run(
        [sys.executable, "-m", "hub", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kwargs,
    )


def clean_env(data_dir: Path) -> dict[str, str]:
    """The process environment with no ``HUB_*`` variable but ``HUB_DATA_DIR``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env["HUB_DATA_DIR"] = str(data_dir)
    return env


def journaled(data_dir: Path, events: list[Event]) -> None:
    """A journal in ``data_dir`` holding ``events``, as the hub would have left it."""

    async def write() -> None:
        journal = Journal.open(data_dir)
        try:
            await journal.append(events)
        finally:
            journal.close()

    asyncio.run(write())
