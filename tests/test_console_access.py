"""The console's access at the HTTP level (aiohttp's test client): the login form and its
cookie's flags, the Jupyter-style address, the redirect to the login, CSRF and origin checks,
the security headers; and what the setup and quarantine pages do, without a browser."""

from __future__ import annotations

import re
import time
from http.cookies import SimpleCookie
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from hub import operator
from hub.app import create_app
from hub.console.login import next_page
from sinks import journal as store
from tests.support import (
    CONSOLE_TOKEN,
    OPERATOR,
    SECRET,
    SEED_DLR,
    keep_refused,
    make_settings,
)

PAGES = ["/console/overview", "/console/events", "/console/setup", "/console/quarantine"]


async def client_of(aiohttp_client, data_dir: Path) -> TestClient:
    return await aiohttp_client(create_app(make_settings(data_dir)))


async def logged_in(client: TestClient) -> str:
    """Logs the client's cookie jar in with the form; the session's CSRF token."""
    answer = await client.post(
        "/console/login", data={"token": CONSOLE_TOKEN, "next": "/console/setup"}
    )
    assert answer.status == 200 and answer.url.path == "/console/setup"
    return csrf_of(await answer.text())


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match, "the page has a form with the CSRF token"
    return match.group(1)


def session_cookie(answer) -> SimpleCookie:
    cookies = SimpleCookie()
    for header in answer.headers.getall("Set-Cookie", []):
        cookies.load(header)
    return cookies


async def test_the_login_form_sets_a_strict_httponly_cookie(aiohttp_client, tmp_path) -> None:
    client = await client_of(aiohttp_client, tmp_path)
    answer = await client.post(
        "/console/login",
        data={"token": CONSOLE_TOKEN, "next": "/console/quarantine"},
        allow_redirects=False,
    )
    assert answer.status == 303
    assert answer.headers["Location"] == "/console/quarantine"
    cookie = session_cookie(answer)[operator.COOKIE]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Strict"
    assert cookie["path"] == "/"
    assert int(cookie["max-age"]) == operator.SESSION_SECONDS
    assert not cookie["secure"], "over plain http a Secure cookie would never come back"
    assert CONSOLE_TOKEN not in cookie.value, "the cookie is a session, not the token"
    # behind a TLS proxy that says so, the cookie is Secure
    answer = await client.post(
        "/console/login",
        data={"token": CONSOLE_TOKEN},
        headers={"X-Forwarded-Proto": "https"},
        allow_redirects=False,
    )
    assert session_cookie(answer)[operator.COOKIE]["secure"] is True


async def test_a_wrong_token_is_refused_and_sets_no_cookie(aiohttp_client, tmp_path) -> None:
    client = await client_of(aiohttp_client, tmp_path)
    answer = await client.post("/console/login", data={"token": "wrong-token-0123456789"})
    assert answer.status == 401
    assert operator.COOKIE not in session_cookie(answer)
    assert "not the console token of this hub" in await answer.text()
    answer = await client.get("/console/setup", allow_redirects=False)
    assert answer.status == 303


async def test_pages_lead_to_the_login_and_back(aiohttp_client, tmp_path) -> None:
    client = await client_of(aiohttp_client, tmp_path)
    for path in [*PAGES, "/console/", "/console/quarantine/1"]:
        answer = await client.get(f"{path}?all=1", allow_redirects=False)
        assert answer.status == 303, path
        assert answer.headers["Location"].startswith("/console/login?next=")
    # the login form, then the page asked for, its query kept
    answer = await client.get("/console/quarantine?all=1")
    assert answer.url.path == "/console/login"
    next_field = re.search(r'name="next" value="([^"]+)"', await answer.text())
    assert next_field and next_field.group(1) == "/console/quarantine?all=1"
    answer = await client.post(
        "/console/login", data={"token": CONSOLE_TOKEN, "next": next_field.group(1)}
    )
    assert answer.status == 200 and str(answer.url.relative()) == "/console/quarantine?all=1"
    # the API keeps answering JSON to strangers
    fresh = await aiohttp_client(create_app(make_settings(tmp_path / "other")))
    answer = await fresh.get("/api/v1/status")
    assert answer.status == 401 and (await answer.json())["error"] == "unauthorized"


def test_after_the_login_only_a_console_page_of_the_hub() -> None:
    for given in ["//evil.example/console/", "https://evil.example/", "/console\\..", "", None]:
        assert next_page(given) == "/console/"
    assert next_page("/console/login?next=/x") == "/console/"
    assert next_page("/console/quarantine?all=1") == "/console/quarantine?all=1"


async def test_the_jupyter_address_logs_in_and_drops_the_token(aiohttp_client, tmp_path) -> None:
    client = await client_of(aiohttp_client, tmp_path)
    answer = await client.get(
        f"/console/quarantine?all=1&token={CONSOLE_TOKEN}", allow_redirects=False
    )
    assert answer.status == 303
    assert answer.headers["Location"] == "/console/quarantine?all=1"
    assert operator.COOKIE in session_cookie(answer)
    answer = await client.get("/console/?token=" + CONSOLE_TOKEN)
    assert answer.status == 200 and "token" not in str(answer.url)
    typed = await aiohttp_client(create_app(make_settings(tmp_path / "typed")))
    answer = await typed.get("/console?token=" + CONSOLE_TOKEN)  # no slash, as one types it
    assert answer.url.path == "/console/overview" and "token" not in str(answer.url)
    # a wrong one: the login form, saying so, and no session
    stranger = await aiohttp_client(create_app(make_settings(tmp_path / "other")))
    answer = await stranger.get("/console/?token=wrong", allow_redirects=False)
    assert answer.status == 303 and operator.COOKIE not in session_cookie(answer)
    answer = await stranger.get("/console/?token=wrong")
    assert answer.url.path == "/console/login" and "not the console token" in await answer.text()


async def test_sessions_of_another_token_or_too_old_are_refused(aiohttp_client, tmp_path) -> None:
    now = time.time()
    good = operator.new_session(CONSOLE_TOKEN, now)
    assert operator.valid_session(CONSOLE_TOKEN, good, now)
    assert not operator.valid_session("another-token-0123456789", good, now)
    assert not operator.valid_session(CONSOLE_TOKEN, good, now + operator.SESSION_SECONDS + 1)
    issued, nonce, mac = good.split(".")
    assert not operator.valid_session(CONSOLE_TOKEN, f"{int(issued) + 1}.{nonce}.{mac}", now)
    client = await client_of(aiohttp_client, tmp_path)
    client.session.cookie_jar.update_cookies({operator.COOKIE: "1.forged.mac"})
    answer = await client.get("/console/setup", allow_redirects=False)
    assert answer.status == 303


async def test_a_cookie_s_post_needs_the_csrf_token_and_the_hub_s_origin(
    aiohttp_client, tmp_path
) -> None:
    data_dir = tmp_path / "data"
    number = await keep_refused(data_dir, query=SEED_DLR)
    client = await client_of(aiohttp_client, data_dir)
    csrf = await logged_in(client)
    own = str(client.make_url("/")).rstrip("/")
    replay = f"/console/quarantine/{number}/replay"
    refused = [
        await client.post(replay, allow_redirects=False),
        await client.post(replay, data={"csrf": "wrong"}, allow_redirects=False),
        await client.post(replay, data={"csrf": csrf + "x"}, allow_redirects=False),
        await client.post(
            replay,
            data={"csrf": csrf},
            headers={"Origin": "https://evil.example"},
            allow_redirects=False,
        ),
        await client.post(
            replay, data={"csrf": csrf}, headers={"Origin": "null"}, allow_redirects=False
        ),
        await client.post(
            replay,
            data={"csrf": csrf},
            headers={"Referer": "http://evil.example/page"},
            allow_redirects=False,
        ),
        # under /api/ too, whatever the route
        await client.post("/api/v1/status", allow_redirects=False),
    ]
    for answer in refused:
        assert answer.status == 403, await answer.text()
    assert (await refused[-1].json())["error"] == "csrf"
    assert store.quarantined(data_dir / store.JOURNAL_FILE, seq=number)[0].replayed_at is None
    # the token in a header, from the hub's own origin: done
    answer = await client.post(
        replay, headers={"X-CSRF-Token": csrf, "Origin": own}, allow_redirects=False
    )
    assert answer.status == 303
    assert answer.headers["Location"].startswith(f"/console/quarantine/{number}?replayed=1")
    assert store.quarantined(data_dir / store.JOURNAL_FILE, seq=number)[0].replayed_at


async def test_a_bearer_s_post_needs_no_csrf_token(aiohttp_client, tmp_path) -> None:
    data_dir = tmp_path / "data"
    number = await keep_refused(data_dir, query=SEED_DLR)
    client = await client_of(aiohttp_client, data_dir)
    answer = await client.post(
        f"/console/quarantine/{number}/replay", headers=OPERATOR, allow_redirects=False
    )
    assert answer.status == 303
    assert store.quarantined(data_dir / store.JOURNAL_FILE, seq=number)[0].replayed_at


async def test_logging_out_ends_the_session(aiohttp_client, tmp_path) -> None:
    client = await client_of(aiohttp_client, tmp_path)
    csrf = await logged_in(client)
    assert (await client.post("/console/logout", allow_redirects=False)).status == 403
    answer = await client.post("/console/logout", data={"csrf": csrf}, allow_redirects=False)
    assert answer.status == 303 and answer.headers["Location"] == operator.LOGIN
    assert session_cookie(answer)[operator.COOKIE].value == ""
    client.session.cookie_jar.update_cookies(session_cookie(answer))
    assert (await client.get("/console/setup", allow_redirects=False)).status == 303


async def test_every_console_answer_has_the_security_headers(aiohttp_client, tmp_path) -> None:
    client = await client_of(aiohttp_client, tmp_path)
    login = await client.get("/console/login")
    stylesheet = re.search(r'href="(/console/static/console\.css[^"]*)"', await login.text())
    assert stylesheet
    await logged_in(client)
    answers = {
        "login": login,
        "static": await client.get(stylesheet.group(1)),
        "script": await client.get("/console/static/console.js"),
        "missing": await client.get("/console/no-such-page"),
        **{path: await client.get(path) for path in PAGES},
    }
    for name, answer in answers.items():
        assert answer.status == (404 if name == "missing" else 200), name
        csp = answer.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, name
        assert "'unsafe-inline'" not in csp and "http" not in csp, name
        assert answer.headers["X-Content-Type-Options"] == "nosniff", name
        assert answer.headers["Referrer-Policy"] == "same-origin", name
    for page in ("login", *PAGES):
        assert answers[page].headers["Cache-Control"] == "no-store", page
        text = await answers[page].text()
        assert "<script>" not in text and " style=" not in text and "onclick" not in text
    assert (
        answers["script"]
        .headers["Content-Type"]
        .startswith(("text/javascript", "application/javascript"))
    )
    api = await client.get("/api/v1/status")
    assert api.headers["X-Content-Type-Options"] == "nosniff"


async def test_the_setup_page_lists_every_url_and_sends_a_test_callback(
    aiohttp_client, tmp_path
) -> None:
    data_dir = tmp_path / "data"
    client = await client_of(aiohttp_client, data_dir)
    csrf = await logged_in(client)
    page = await (await client.get("/console/setup?base=https://hooks.example.com")).text()
    for provider in ("ecampaign", "dmc", "isendpro", "ecall", "smsmode"):
        assert f"https://hooks.example.com/callbacks/{provider}/{SECRET}/" in page
    answer = await client.post(
        "/console/setup/test",
        data={"csrf": csrf, "provider": "dmc", "callback": "cra"},
    )
    assert answer.status == 200
    heard = (await answer.text()).split('class="heard"', 1)[1]
    assert "<code>200 OK</code>" in heard
    assert "dmc.mms.delivery" in heard or "dmc." in heard
    rows = store.select(data_dir / store.JOURNAL_FILE, limit=100)
    assert rows and all(r.event().data.provider == "dmc" for r in rows)
    unknown = await client.post(
        "/console/setup/test", data={"csrf": csrf, "provider": "dmc", "callback": "nope"}
    )
    assert unknown.status == 404


async def test_the_quarantine_pages_show_the_request_escaped(aiohttp_client, tmp_path) -> None:
    data_dir = tmp_path / "data"
    number = await keep_refused(data_dir, query=b"tel=0612345678&msg=<script>alert(1)</script>")
    client = await client_of(aiohttp_client, data_dir)
    await logged_in(client)
    listing = await (await client.get("/console/quarantine")).text()
    assert f'href="/console/quarantine/{number}"' in listing and "parser_error" in listing
    page = await (await client.get(f"/console/quarantine/{number}")).text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert" not in page
    assert "iSendPro &lt;b&gt;bold&lt;/b&gt;" in page
    assert (await client.get("/console/quarantine/999")).status == 404


@pytest.mark.parametrize("path", ["/console/quarantine/replay", "/console/setup/test"])
async def test_a_stranger_s_post_is_refused_before_anything(aiohttp_client, tmp_path, path) -> None:
    client = await client_of(aiohttp_client, tmp_path)
    answer = await client.post(path, data={"provider": "dmc", "callback": "cra"})
    assert answer.status == 401
    assert not (tmp_path / store.JOURNAL_FILE).exists() or not store.select(
        tmp_path / store.JOURNAL_FILE, limit=1
    )
