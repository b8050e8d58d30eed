"""Two real hubs (``hub serve``, each on its own data directory, without a broker) on one
shared index (``HUB_INDEX_URL``, a throwaway PostgreSQL): the console and the API of replica B
find a message that only replica A received (issue 19), through B's
``/api/v1/messages/...``, ``/api/v1/events?phone=06...`` and B's console pages, logged in with
the console token as a browser is (the token in the address, then the session cookie)."""

from __future__ import annotations

import http.cookiejar
import json
import urllib.error
import urllib.request
from urllib.parse import quote

from sinks import journal as store
from tests.harness.hubproc import HubProcess
from tests.support import CONSOLE_TOKEN, DLR, OPERATOR, dlr_query, wait_until


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_the_console_of_b_finds_a_message_only_a_received(postgres, database, tmp_path) -> None:
    shared = {"HUB_INDEX_URL": database, "HUB_CONSOLE_TOKEN": CONSOLE_TOKEN}
    with (
        HubProcess(tmp_path / "a", shared) as a,
        HubProcess(tmp_path / "b", shared) as b,
    ):
        assert _get(a.url + f"{DLR}?{dlr_query(35986)}") == (200, "validation")  # A only
        message = b.url + "/api/v1/messages/isendpro/35986"

        def found_by_b() -> bool:  # once A's worker has recorded it
            return _get(message, OPERATOR)[0] == 200

        wait_until(found_by_b, failure=lambda: a.log_tail() + "\n" + b.log_tail())
        name_a = (a.data_dir / "replica").read_text().strip()
        assert store.last_seq(b.data_dir / store.JOURNAL_FILE) == 0, "B received nothing"

        # B's API: the message, and the events of the number as a person types it
        view = json.loads(_get(message, OPERATOR)[1])
        assert (view["state"], view["recipient"]) == ("delivered", "+33612345678")
        assert [(e["replica"], e["seq"]) for e in view["timeline"]] == [(name_a, 1)]
        status, body = _get(b.url + "/api/v1/events?phone=" + quote("06 12 34 56 78"), OPERATOR)
        assert status == 200
        [item] = json.loads(body)["items"]
        assert (item["replica"], item["seq"], item["event"]["subject"]) == (name_a, 1, "35986")

        # B's console, as a browser: the token in the address logs in (a session cookie)
        jar = http.cookiejar.CookieJar()
        browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        with browser.open(f"{b.url}/console/?token={CONSOLE_TOKEN}", timeout=10) as answer:
            assert answer.status == 200 and answer.url == b.url + "/console/overview"
        assert any(cookie.name == "hub_console" for cookie in jar)
        with browser.open(f"{b.url}/console/events?phone=06+12+34+56+78", timeout=10) as answer:
            page = answer.read().decode()
        assert f'<tr data-seq="1" data-replica="{name_a}">' in page
        assert 'href="/console/messages/isendpro/35986"' in page
        with browser.open(f"{b.url}/console/messages/isendpro/35986", timeout=10) as answer:
            page = answer.read().decode()
        assert 'id="current-state">delivered</span> (final)' in page
        assert f'at <span class="replica">{name_a}</span>' in page
        # without the session: the login form, nothing of the message
        status, page = _get(f"{b.url}/console/messages/isendpro/35986")
        assert status == 200 and 'name="token"' in page
        assert "+33612345678" not in page and "current-state" not in page
