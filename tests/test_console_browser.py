"""The console in a real headless Chromium (Debian's, driven by Playwright: see
``tests.harness.browser``) against a real ``hub serve`` on loopback: logging in (and being
refused), the address ``hub serve`` prints, copying a callback URL, a test callback, replaying a
quarantined request. In CI a browser that cannot start fails these tests; it never skips them.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from hub import operator
from sinks import journal as store
from tests.harness.hubproc import HubProcess
from tests.support import CONSOLE_TOKEN, SECRET, SEED_DLR, keep_refused

# pytest-playwright-asyncio's browser, context and page live in the session's event loop
pytestmark = pytest.mark.asyncio(loop_scope="session")

TIMEOUT_MS = 20_000
"""How long an expectation waits for the page, in milliseconds (Playwright's default, 5 s, is
short for a loaded 2-core machine); actions wait 30 s by default."""


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[HubProcess]:
    """A hub whose console token is ``CONSOLE_TOKEN``."""
    process = HubProcess(tmp_path / "data", {"HUB_CONSOLE_TOKEN": CONSOLE_TOKEN})
    process.start()
    try:
        yield process
    finally:
        process.stop()


expect.set_options(timeout=TIMEOUT_MS)


async def log_in(page: Page, hub: HubProcess, token: str = CONSOLE_TOKEN) -> None:
    """The login form, filled and sent with the keyboard alone."""
    await page.goto(f"{hub.url}/console/setup")
    await expect(page).to_have_url(re.compile(r"/console/login\?next="))
    await expect(page.get_by_label("Token")).to_be_focused()
    await page.keyboard.type(token)
    await page.keyboard.press("Enter")


async def test_log_in_with_the_token_and_not_with_a_wrong_one(page: Page, hub: HubProcess) -> None:
    await log_in(page, hub, "not-the-token-0123456789")
    await expect(page.get_by_role("alert")).to_contain_text("not the console token")
    await expect(page).to_have_url(re.compile(r"/console/login"))
    await page.get_by_label("Token").fill(CONSOLE_TOKEN)
    await page.get_by_role("button", name="Log in").click()
    await expect(page).to_have_url(f"{hub.url}/console/setup")
    await expect(page.get_by_role("heading", name="Setup", exact=True)).to_be_visible()
    cookies = await page.context.cookies()
    assert [(c["name"], c["httpOnly"], c["sameSite"]) for c in cookies] == [
        (operator.COOKIE, True, "Strict")
    ]
    # logging out: back to the login form, and the pages with it
    await page.get_by_role("button", name="Log out").click()
    await expect(page).to_have_url(f"{hub.url}/console/login")
    await page.goto(f"{hub.url}/console/quarantine")
    await expect(page).to_have_url(re.compile(r"/console/login\?next="))


async def test_the_address_hub_serve_prints_logs_in(page: Page, tmp_path: Path) -> None:
    process = HubProcess(tmp_path / "data")  # no token configured: the hub makes one
    await asyncio.to_thread(process.start)
    try:
        printed = [
            line.removeprefix("console: ")
            for line in process.log_file.read_text().splitlines()
            if line.startswith("console: ")
        ]
        assert len(printed) == 1 and "?token=" in printed[0]
        await page.goto(printed[0])
        await expect(page).to_have_url(f"{process.url}/console/overview")
        await expect(page.get_by_role("heading", name="Overview", exact=True)).to_be_visible()
        # the address with the token stays in no history: one step back is the blank page
        await page.go_back()
        assert page.url == "about:blank"
    finally:
        await asyncio.to_thread(process.stop)


async def test_copy_a_callback_url_from_the_setup_page(new_context, hub: HubProcess) -> None:
    context = await new_context(permissions=["clipboard-read", "clipboard-write"])
    page = await context.new_page()
    await log_in(page, hub)
    row = page.locator("#isendpro-delivery")
    url = f"{hub.url}/callbacks/isendpro/{SECRET}/delivery"
    # the secret is hidden until asked for (with the keyboard, as with the mouse)
    await expect(row.get_by_text(url)).to_be_hidden()
    await row.locator("summary").focus()
    await page.keyboard.press("Enter")
    await expect(row.get_by_text(url)).to_be_visible()
    await row.get_by_role("button", name="Copy the isendpro delivery URL").focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("#announce")).to_have_text("Copied to the clipboard.")
    assert await page.evaluate("navigator.clipboard.readText()") == url


async def test_send_a_test_callback_and_see_the_provider_s_answer(
    page: Page, hub: HubProcess
) -> None:
    await log_in(page, hub)
    row = page.locator("#isendpro-delivery")
    await row.get_by_role("button", name="Send a test callback").click()
    await expect(page).to_have_url(re.compile(r"/console/setup/test"))
    heard = page.locator("#isendpro-delivery .heard")
    await expect(heard.locator("output")).to_have_text("200 validation")
    await expect(heard).to_contain_text("isendpro.sms.delivery.delivered")
    rows = store.select(hub.data_dir / store.JOURNAL_FILE, limit=10)
    assert [r.event().data.message_id for r in rows] == ["35986"]


async def test_replay_a_quarantined_request(page: Page, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    number = await keep_refused(data_dir, query=SEED_DLR)  # a DLR an older parser refused
    process = HubProcess(data_dir, {"HUB_CONSOLE_TOKEN": CONSOLE_TOKEN})
    await asyncio.to_thread(process.start)
    try:
        await log_in(page, process)
        await page.get_by_role("navigation").get_by_role("link", name="Quarantine").click()
        await expect(page.get_by_text("1 waiting")).to_be_visible()
        await page.get_by_role("link", name=f"#{number}").click()
        await expect(page.locator("#raw")).to_contain_text("statut=0")
        await expect(page.locator(".reason")).to_have_text("parser_error")
        await page.get_by_role("button", name=f"Replay #{number}").click()
        await expect(page.get_by_role("status").first).to_contain_text(
            "Replayed 1 request: 1 event journaled."
        )
        await expect(page.locator(".facts")).to_contain_text("replayed")
        [item] = store.quarantined(data_dir / store.JOURNAL_FILE, seq=number)
        assert item.replayed_at is not None
        rows = store.select(data_dir / store.JOURNAL_FILE, limit=10)
        assert [r.event().data.message_id for r in rows] == ["35986"]
    finally:
        await asyncio.to_thread(process.stop)
