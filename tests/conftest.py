"""Shared fixtures: settings on a throwaway data directory, the hub app, a real RabbitMQ node."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.settings import Settings
from tests.support import make_settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data")


@pytest.fixture(scope="session")
def rabbit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """One RabbitMQ node for the session. In CI (or HUB_REQUIRE_BROKER=1) a node that cannot
    start fails the tests that need it; elsewhere they are skipped, saying why."""
    from tests.harness.rabbitmq import RabbitNode, broker_required

    node = RabbitNode(tmp_path_factory.mktemp("rabbitmq"))
    try:
        node.start()
    except (RuntimeError, OSError) as exc:
        node.stop()
        if broker_required():
            pytest.fail(f"RabbitMQ could not start: {exc}")
        pytest.skip(f"RabbitMQ could not start (set CI=true to make this a failure): {exc}")
    yield node
    node.stop()
