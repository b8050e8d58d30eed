"""Shared fixtures: settings on a throwaway data directory, the hub app, a real RabbitMQ node,
a throwaway PostgreSQL (``tests.harness.postgres``), a real headless Chromium
(``tests.harness.browser``)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aio_pika
import pytest
import pytest_asyncio
from aio_pika.abc import AbstractChannel
from hypothesis import settings as hypothesis_settings
from playwright.async_api import Browser, Playwright, async_playwright

from hub.settings import Settings
from sinks.journal import Journal
from tests.harness.browser import CHROMIUM, launch_options, required
from tests.harness.postgres import PostgresError, PostgresServer, postgres_bin, postgres_required
from tests.harness.rabbitmq import RabbitNode, broker_required
from tests.support import make_settings

# Property tests check what parsers make of input, not how fast: no per-example deadline (on a
# loaded 2-core machine one example can take a second; speed is make bench's business).
hypothesis_settings.register_profile("hub", deadline=None)
hypothesis_settings.load_profile("hub")


@pytest.fixture
async def journal(tmp_path: Path) -> AsyncIterator[Journal]:
    """A journal open on the test's data directory (``tmp_path / "data"``), closed after."""
    opened = Journal.open(tmp_path / "data")
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data")


def _started(node: RabbitNode) -> RabbitNode:
    """Starts ``node``. One that cannot start fails the test in CI (or with HUB_REQUIRE_BROKER=1)
    and skips it elsewhere, saying why: never a silent skip where the broker is required."""
    try:
        node.start()
    except (RuntimeError, OSError) as exc:
        node.stop()
        if broker_required():
            pytest.fail(f"RabbitMQ could not start: {exc}")
        pytest.skip(f"RabbitMQ could not start (set CI=true to make this a failure): {exc}")
    return node


@pytest.fixture(scope="session")
def rabbit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitNode]:
    """One RabbitMQ node for the session."""
    node = _started(RabbitNode(tmp_path_factory.mktemp("rabbitmq")))
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture
def own_node(tmp_path: Path) -> Iterator[RabbitNode]:
    """A RabbitMQ node of the test's own, for a test that stops or restarts it."""
    node = _started(RabbitNode(tmp_path / "own-rabbitmq"))
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture
def exchange_name() -> str:
    """An exchange of the test's own on the shared node."""
    return f"test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def channel(rabbit: RabbitNode) -> AsyncIterator[AbstractChannel]:
    """A channel on the shared node, closed with its connection after the test."""
    connection = await aio_pika.connect(rabbit.url)
    async with connection:
        yield await connection.channel()


# -- the console's browser tests: pytest-playwright-asyncio's fixtures on Debian's chromium ----


@pytest.fixture(scope="session")
def browser_type_launch_args() -> dict[str, Any]:
    return launch_options()


@pytest.fixture(scope="session")
def base_url() -> None:
    """No base URL: each test has its own hub's. (The plugin's own fixture is an instance
    method, which pytest deprecates: a warning, which this suite makes an error.)"""
    return None


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def playwright() -> AsyncIterator[Playwright]:
    """Playwright's driver, in the session's loop (the plugin's own takes the loop scope of the
    suite's async fixtures, the test's: too short for a session's driver)."""
    async with async_playwright() as driver:
        yield driver


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser(launch_browser: Callable[[], Awaitable[Browser]]) -> AsyncIterator[Browser]:
    """Chromium for the session. One that cannot start fails the test in CI (or with
    HUB_REQUIRE_BROKER=1) and skips it elsewhere, saying why: never a silent skip."""
    try:
        started = await launch_browser()
    except Exception as exc:  # Playwright's Error: no such file, a crash at start...
        if required():
            pytest.fail(f"Chromium could not start ({CHROMIUM}): {exc}")
        pytest.skip(f"Chromium could not start (set CI=true to make this a failure): {exc}")
    try:
        yield started
    finally:
        await started.close()


# -- the shared index's tests: a throwaway PostgreSQL (tests.harness.postgres) ----------------


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    """One server for a test module (each test has a database of its own: ``database``). One
    that cannot start fails the test in CI (or with HUB_REQUIRE_BROKER=1), skips it elsewhere,
    saying why."""
    if postgres_bin() is None and not postgres_required():
        pytest.skip("PostgreSQL is not installed (make system-packages installs it)")
    try:
        server = PostgresServer()
        server.start()
    except (PostgresError, OSError) as exc:
        if postgres_required():
            pytest.fail(f"PostgreSQL could not start: {exc}")
        pytest.skip(f"PostgreSQL could not start (set CI=true to make this a failure): {exc}")
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def database(postgres: PostgresServer) -> str:
    """The URL of an empty database of the test's own on the module's server."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    postgres.psql(f"CREATE DATABASE {name}")
    return postgres.url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(params=["local", "shared"])
def index_backend(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The read model a test of the API or the console runs on, as settings: this hub's own
    index (``local``), or the shared index (``shared``: ``index_url``, a database of the
    test's own on the module's PostgreSQL). The same assertions hold on both."""
    if request.param == "local":
        return {}
    return {"index_url": request.getfixturevalue("database")}
