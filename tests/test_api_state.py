"""The operator's API on the hub's state (issue 17): the status (journal, worker, broker,
quarantine, rates), the callback URLs, and the token every operation wants."""

from __future__ import annotations

import re
from pathlib import Path

from hub.api import build
from hub.app import create_app
from parsers import REGISTRY
from sinks import journal as store
from sinks.memory import MemorySink
from tests.support import DLR, OPERATOR, SECRET, dlr_query, eventually, get_raw, make_settings

BAD = f"{DLR}?statut=0&tel=0612345678&date=never&heure=10:00:00"


async def api(client, method: str, path: str, **kwargs):
    answer = await client.request(method, f"/api/v1{path}", headers=OPERATOR, **kwargs)
    return answer.status, await answer.json()


async def test_status_of_the_journal_worker_quarantine_and_rates(aiohttp_client, tmp_path) -> None:
    client = await aiohttp_client(create_app(make_settings(tmp_path)))
    status, doc = await api(client, "GET", "/status")
    assert status == 200
    assert doc["journal"]["ready"] is True and doc["journal"]["trouble"] is None
    assert doc["journal"]["last_seq"] == 0 and doc["journal"]["events_held"] == 0
    assert doc["journal"]["oldest_event_age_seconds"] is None
    assert doc["broker"] == {"configured": False, "connected": None, "forwarded_up_to": 0}
    assert doc["worker"]["runs"] == "inline"
    assert doc["quarantine"] == {"waiting": 0}
    assert doc["rates"]["last_minute"]["callbacks"] == 0
    for i in (1, 2):
        assert await (await get_raw(client, f"{DLR}?{dlr_query(i)}")).read() == b"validation"
    assert await (await get_raw(client, BAD)).read() == b"probleme"
    wrong = await client.get(f"/callbacks/isendpro/wrong-secret/delivery?{dlr_query(3)}")
    assert wrong.status == 404

    async def indexed() -> bool:
        nonlocal doc
        _status, doc = await api(client, "GET", "/status")
        return doc["indexed_up_to"] == 2

    await eventually(indexed)
    journal = doc["journal"]
    assert (journal["last_seq"], journal["events_held"]) == (2, 2)
    assert journal["size_bytes"] > 0 and journal["oldest_event_age_seconds"] >= 0
    assert doc["worker"] == {"runs": "inline", "indexed_up_to": 2, "lag_events": 0}
    assert doc["quarantine"] == {"waiting": 1}
    rate = doc["rates"]["last_minute"]
    assert rate["callbacks"] == 4
    assert rate["by_outcome"] == {"accepted": 2, "rejected": 1, "unauthorized": 1}
    assert rate["by_provider"] == {"isendpro": 4}
    assert rate["window_seconds"] <= 60
    assert doc["rates"]["last_15_minutes"]["callbacks"] == 4


async def test_status_says_whether_the_broker_is_connected(aiohttp_client, tmp_path) -> None:
    sink = MemorySink()
    client = await aiohttp_client(create_app(make_settings(tmp_path), sink=sink))
    status, doc = await api(client, "GET", "/status")
    assert status == 200
    assert doc["broker"]["configured"] is True and doc["broker"]["connected"] is True
    sink.failing = True
    assert await (await get_raw(client, f"{DLR}?{dlr_query(1)}")).read() == b"validation"
    _status, doc = await api(client, "GET", "/status")
    assert doc["broker"]["connected"] is False
    assert doc["backlog_events"] == 1 and doc["oldest_unforwarded_age_seconds"] >= 0
    sink.failing = False

    async def forwarded() -> bool:
        _status, doc = await api(client, "GET", "/status")
        return doc["broker"]["forwarded_up_to"] == 1 and doc["backlog_events"] == 0

    await eventually(forwarded)


async def test_urls_carry_the_secret_and_answer(aiohttp_client, tmp_path) -> None:
    client = await aiohttp_client(create_app(make_settings(tmp_path)))
    status, doc = await api(client, "GET", "/urls", params={"base": "https://hooks.example.com/"})
    assert status == 200 and doc["base"] == "https://hooks.example.com"
    urls = {(u["provider"], u["callback"]): u for u in doc["urls"]}
    assert set(urls) == {
        (p.value, c.name) for p, module in REGISTRY.items() for c in module.CALLBACKS
    }
    dlr = urls[("isendpro", "delivery")]
    assert dlr["url"] == f"https://hooks.example.com/callbacks/isendpro/{SECRET}/delivery"
    assert dlr["methods"] == ["GET"] and dlr["summary"]
    # by default, the address the request came to: the URL answers as given
    status, doc = await api(client, "GET", "/urls")
    url = next(
        u["url"] for u in doc["urls"] if u["callback"] == "delivery" and "isendpro" in u["url"]
    )
    assert url.startswith(str(client.make_url("/")).rstrip("/"))
    answer = await client.session.get(f"{url}?{dlr_query(1)}")
    assert await answer.read() == b"validation"
    for bad in ("ftp://hooks.example.com", "hooks.example.com", "https://", "http://[::1"):
        status, body = await api(client, "GET", "/urls", params={"base": bad})
        assert (status, body["error"]) == (400, "bad_parameter"), bad


async def test_every_operation_wants_the_token(aiohttp_client, tmp_path) -> None:
    settings = make_settings(tmp_path)
    client = await aiohttp_client(create_app(settings))
    operations = build(settings).operations
    assert len(operations) >= 7
    for op in operations:
        path = "/api/v1" + op.path.replace("{number}", "1").replace("{id}", "x")
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            answer = await client.request(op.method, path, headers=headers, json={})
            assert answer.status == 401, (op.method, path)
    assert not store.select(tmp_path / store.JOURNAL_FILE)


def test_the_readme_table_names_operations_that_exist(tmp_path) -> None:
    """Each row of the README's operator's API table is a served operation, and the operations
    of the quarantine, jobs, status and URLs all have one."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## Operator's API", 1)[1].split("\n## ", 1)[0]
    rows = {
        (m.group(1), m.group(2).split("?")[0])
        for m in re.finditer(r"^\| `(GET|POST|PUT|PATCH|DELETE) (/api/v1/[^`]*)` \|", section, re.M)
    }
    served = {(op.method, "/api/v1" + op.path) for op in build(make_settings(tmp_path)).operations}
    assert rows and rows <= served
    mine = ("/api/v1/status", "/api/v1/urls", "/api/v1/quarantine", "/api/v1/jobs")
    assert {s for s in served if s[1].startswith(mine)} <= rows


async def test_files_that_cannot_be_read_are_a_503_not_a_500(aiohttp_client, tmp_path) -> None:
    """The journal deleted under the hub, a directory in its place: the operations that read it
    say so in a problem, the hub goes on answering the others."""
    client = await aiohttp_client(create_app(make_settings(tmp_path)))
    journal = tmp_path / store.JOURNAL_FILE
    moved = tmp_path / "moved.sqlite3"
    journal.rename(moved)
    journal.mkdir()
    try:
        for path in ("/quarantine", "/quarantine/1", "/status"):
            status, body = await api(client, "GET", path)
            assert (status, body["error"]) == (503, "unavailable"), path
        status, _ = await api(client, "GET", "/urls")
        assert status == 200
    finally:
        journal.rmdir()
        moved.rename(journal)


async def test_blank_filters_are_no_filters(aiohttp_client, tmp_path) -> None:
    client = await aiohttp_client(create_app(make_settings(tmp_path)))
    assert await (await get_raw(client, BAD)).read() == b"probleme"
    query = {"provider": "", "callback": "", "state": "", "since": "", "limit": ""}
    status, page = await api(client, "GET", "/quarantine", params=query)
    assert status == 200 and len(page["items"]) == 1
