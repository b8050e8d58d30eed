"""Headless Chromium for the console's browser tests: Debian's ``chromium`` package
(``/usr/bin/chromium``, installed by ``make system-packages``), driven by Playwright.

Playwright's wheel brings its driver, never a browser, and nothing here runs
``playwright install`` (a browser download cannot work on these machines): the launch options
point it at the system's Chromium. The fixtures (``tests/conftest.py``) are those of
``pytest-playwright-asyncio`` (``browser``, ``context``, ``page``, ``new_context``...), with
these options; a browser that cannot start fails the test in CI (or with
``HUB_REQUIRE_BROKER=1``, as ``make test`` runs) and skips it elsewhere, saying why.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.harness.rabbitmq import broker_required

__all__ = ["CHROMIUM", "launch_options", "required"]

CHROMIUM = Path("/usr/bin/chromium")


def required() -> bool:
    """The browser tests must run: in CI, and under ``make test`` (which installs Chromium);
    the same switch as the broker's."""
    return broker_required()


def launch_options() -> dict[str, Any]:
    """Playwright's launch options for the system's Chromium, headless. (Playwright starts it
    with ``--no-sandbox`` unless asked for the sandbox: these tests run as root in CI.)"""
    return {"executable_path": str(CHROMIUM), "headless": True}
