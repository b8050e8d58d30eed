"""The console in a real headless Chromium (Debian's, driven by Playwright: see
``tests.harness.browser``) against a real ``hub serve`` on loopback: logging in (and being
refused), the address ``hub serve`` prints, copying a callback URL, a test callback, replaying a
quarantined request (one, and all that a filter matches as a job), finding a message by a
national phone number, its timeline, a new event appearing live (the screenshot ``docs/console.png`` is taken there),
the pages on a phone's width. In CI a browser that cannot start fails these tests; it never
skips them.
"""

from __future__ import annotations

import asyncio
import os
import re
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from hub import operator
from sinks import journal as store
from tests.harness.hubproc import HubProcess
from tests.support import (
    CONSOLE_TOKEN,
    DLR,
    OPERATOR,
    SECRET,
    SEED_DLR,
    dlr_query,
    eventually,
    keep_refused,
)

# pytest-playwright-asyncio's browser, context and page live in the session's event loop
pytestmark = pytest.mark.asyncio(loop_scope="session")

SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "console.png"
"""The README's picture of the console: a message's page, as the browser test sees it. Written
there when ``HUB_UPDATE_SCREENSHOT=1`` (so that a test run leaves the tree as it was), in the
test's own directory otherwise."""
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


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.status, answer.read()


async def callback(hub: HubProcess, query: bytes | str) -> None:
    """An iSendPro delivery report sent to the hub, as iSendPro sends it."""
    query = query.decode() if isinstance(query, bytes) else query
    status, body = await asyncio.to_thread(_get, f"{hub.url}{DLR}?{query}")
    assert (status, body) == (200, b"validation")


async def indexed(hub: HubProcess, phone: str, count: int) -> None:
    """Waits until the hub's worker has indexed ``count`` events of ``phone`` (the API)."""
    url = f"{hub.url}/api/v1/events?{urllib.parse.urlencode({'phone': phone})}"

    async def found() -> bool:
        _, body = await asyncio.to_thread(_get, url, OPERATOR)
        return body.count(b'"seq":') >= count

    await eventually(found)


async def test_find_a_message_by_a_national_number_its_timeline_and_a_live_event(
    new_context, hub: HubProcess, tmp_path: Path
) -> None:
    context = await new_context(viewport={"width": 1200, "height": 860})
    page = await context.new_page()
    await callback(hub, SEED_DLR)  # the README's sample: message 35986 to +33612345678
    await indexed(hub, "+33612345678", 1)
    await log_in(page, hub)
    await page.get_by_role("navigation").get_by_role("link", name="Events").click()
    # the number as a person types it, with the keyboard alone
    await page.get_by_label("Phone number").focus()
    await page.keyboard.type("06 12 34 56 78")
    await page.keyboard.press("Enter")
    await expect(page).to_have_url(re.compile(r"/console/events\?phone=06\+12\+34\+56\+78"))
    rows = page.locator("#event-rows tr")
    await expect(rows).to_have_count(1)
    await expect(rows.first.get_by_role("link", name="35986")).to_be_visible()
    # live: a new report to the same number appears without a reload
    await page.get_by_label("Live: new events appear as they arrive").check()
    await expect(page).to_have_url(re.compile(r"live=1"))
    await callback(hub, dlr_query(7001, statut="2"))
    await expect(rows).to_have_count(2)
    await expect(rows.first.get_by_role("link", name="7001")).to_be_visible()
    await expect(rows.first).to_contain_text("failed")
    await expect(page.locator("#announce")).to_have_text("1 new event")
    # the message's timeline
    await page.get_by_role("link", name="35986").click()
    await expect(page).to_have_url(f"{hub.url}/console/messages/isendpro/35986")
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Message 35986")
    await expect(page.locator("#current-state")).to_have_text("delivered")
    await expect(page.locator(".timeline > li")).to_have_count(1)
    step = page.locator(".timeline > li").first
    await expect(step).to_contain_text("status 0 Delivered")
    await step.locator("summary").focus()
    await page.keyboard.press("Enter")
    await expect(step.locator("pre").nth(0)).to_contain_text('"tracker": "compte12_5874"')
    await expect(step.locator("pre").nth(2)).to_contain_text('"specversion": "1.0"')
    await page.evaluate("document.activeElement.blur()")  # no focus ring in the picture
    shot = (
        SCREENSHOT if os.environ.get("HUB_UPDATE_SCREENSHOT") == "1" else tmp_path / "console.png"
    )
    await page.screenshot(path=shot, full_page=True)
    assert shot.stat().st_size > 10_000  # a page, not an empty picture


async def test_replay_all_that_match_follows_the_job(page: Page, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    await keep_refused(data_dir, query=SEED_DLR)
    await keep_refused(data_dir, query=dlr_query(8001).encode())
    await keep_refused(data_dir, query=dlr_query(8002).encode(), reason="bad_timestamp")
    process = HubProcess(data_dir, {"HUB_CONSOLE_TOKEN": CONSOLE_TOKEN})
    await asyncio.to_thread(process.start)
    try:
        await log_in(page, process)
        await expect(page).to_have_url(f"{process.url}/console/setup")
        await page.goto(f"{process.url}/console/quarantine")
        await expect(page.locator("#matched")).to_have_text("3 waiting requests match.")
        await page.get_by_label("Reason (a part)").fill("parser")
        await page.get_by_role("button", name="Filter").click()
        await expect(page).to_have_url(re.compile(r"/console/quarantine\?.*\breason=parser\b"))
        await expect(page.locator("#matched")).to_have_text("2 waiting requests match.")
        page.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
        await page.get_by_role("button", name="Replay all 2 that match").click()
        await expect(page).to_have_url(  # the filter kept in the address
            re.compile(r"/console/quarantine\?.*\breason=parser&job=[0-9a-f]+$")
        )
        await expect(page.locator(".job-text")).to_have_text(
            "Done: 2 of 2 requests replayed, 2 events journaled, 0 still refused."
        )
        await expect(page.locator(".job progress")).to_have_attribute("value", "2")
    finally:
        await asyncio.to_thread(process.stop)


async def test_the_pages_fit_a_phone_s_width(new_context, hub: HubProcess) -> None:
    context = await new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = await context.new_page()
    await callback(hub, SEED_DLR)
    await indexed(hub, "+33612345678", 1)
    await log_in(page, hub)
    await expect(page).to_have_url(f"{hub.url}/console/setup")
    for path in ["overview", "events?phone=0612345678", "messages/isendpro/35986", "setup"]:
        await page.goto(f"{hub.url}/console/{path}")
        await expect(page.get_by_role("heading", level=1)).to_be_visible()
        # nothing wider than the screen but what scrolls in its own box (the tables)
        wide = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert wide <= 0, f"/console/{path} is {wide} px wider than the phone"
