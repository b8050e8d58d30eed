"""The operator's API on the quarantine (issue 17): list, show, replay and drop a refused request,
replay all a filter matches as a background job, through the aiohttp test client."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

from core.errors import SinkUnavailable
from core.models import Provider
from hub.app import create_app
from hub.jobs import Busy, Jobs
from parsers import REGISTRY
from sinks import journal as store
from sinks.journal import Journal, QuarantineEntry, QuarantineSelection
from sinks.memory import MemorySink
from tests.support import DLR, OPERATOR, dlr_query, eventually, get_raw, make_settings

BAD = f"{DLR}?statut=0&tel=0612345678&date=never&heure=10:00:00"
"""An iSendPro delivery report whose date no parser reads: refused, quarantined."""


def crashing(request):
    raise IndexError("a parser's bug")


@pytest.fixture
def broken_parser(monkeypatch):
    """iSendPro's parser refuses everything until the test calls the fixture (fixed)."""
    module = REGISTRY[Provider.ISENDPRO]
    real = module.parse
    monkeypatch.setattr(module, "parse", crashing)
    return lambda: monkeypatch.setattr(module, "parse", real)


async def refused(client, *ids: int) -> None:
    for i in ids:
        assert await (await get_raw(client, f"{DLR}?{dlr_query(i)}")).read() == b"probleme"


async def api(client, method: str, path: str, **kwargs):
    answer = await client.request(method, f"/api/v1{path}", headers=OPERATOR, **kwargs)
    body = await answer.json() if answer.content_type == "application/json" else None
    return answer.status, body


def journaled(tmp_path) -> int:
    return len(store.select(tmp_path / store.JOURNAL_FILE))


# -- the quarantine ----------------------------------------------------------------------------


async def test_list_filters_and_pages(aiohttp_client, tmp_path, broken_parser) -> None:
    client = await aiohttp_client(create_app(make_settings(tmp_path)))
    await refused(client, 1, 2, 3)
    broken_parser()
    assert await (await get_raw(client, BAD)).read() == b"probleme"  # bad_timestamp
    status, page = await api(client, "GET", "/quarantine")
    assert status == 200
    numbers = [i["number"] for i in page["items"]]
    assert len(numbers) == 4 and numbers == sorted(numbers, reverse=True)  # newest first
    assert page["next_cursor"] is None
    newest = page["items"][0]
    assert newest["reason"] == "bad_timestamp" and newest["provider"] == "isendpro"
    assert newest["callback"] == "delivery" and newest["method"] == "GET"
    assert newest["replayed_at"] is None and newest["size"] > 0

    async def listed(**query) -> list[int]:
        status, page = await api(client, "GET", "/quarantine", params=query)
        assert status == 200, page
        return [i["number"] for i in page["items"]]

    assert await listed(reason="TIMESTAMP") == numbers[:1]  # a part, any case
    assert await listed(reason="parser_error") == numbers[1:]
    assert await listed(provider="isendpro", callback="delivery") == numbers
    assert await listed(provider="dmc") == []
    assert await listed(callback="reply") == []
    assert await listed(state="replayed") == []
    assert await listed(state="all") == numbers
    now = datetime.now(UTC)
    assert await listed(since=(now - timedelta(minutes=5)).isoformat()) == numbers
    assert await listed(since=(now + timedelta(minutes=5)).isoformat()) == []
    assert await listed(until=(now - timedelta(minutes=5)).isoformat()) == []
    assert await listed(until="2999-01-01T00:00:00") == numbers  # no offset: UTC
    # pages of 3 then 1, by the cursor
    status, first = await api(client, "GET", "/quarantine", params={"limit": 3})
    assert [i["number"] for i in first["items"]] == numbers[:3]
    assert first["next_cursor"] == numbers[2]
    status, second = await api(
        client, "GET", "/quarantine", params={"limit": 3, "cursor": first["next_cursor"]}
    )
    assert [i["number"] for i in second["items"]] == numbers[3:]
    assert second["next_cursor"] is None


@pytest.mark.parametrize(
    "query",
    [
        {"limit": "0"},
        {"limit": "501"},
        {"limit": "many"},
        {"cursor": "-1"},
        {"cursor": str(2**64)},
        {"state": "lost"},
        {"provider": "nobody"},
        {"since": "yesterday-ish"},
        {"until": "2024-13-45T00:00:00Z"},
    ],
)
async def test_list_refuses_bad_parameters(aiohttp_client, tmp_path, query) -> None:
    client = await aiohttp_client(create_app(make_settings(tmp_path)))
    status, body = await api(client, "GET", "/quarantine", params=query)
    assert status == 400
    assert body["error"] == "bad_parameter" and body["detail"]


async def test_show_gives_the_request_as_received(aiohttp_client, tmp_path, broken_parser) -> None:
    client = await aiohttp_client(create_app(make_settings(tmp_path)))
    journal = Journal.open(tmp_path)
    try:
        binary = await journal.quarantine(
            QuarantineEntry(
                received_at="2024-05-01T08:00:00+00:00",
                provider="dmc",
                callback="delivery",
                method="POST",
                reason="bad_xml",
                content_type="application/xml",
                headers='{"Content-Type": "application/xml", "X-Trace": "t1"}',
                query=b"a=%ff",
                body=b"\xff\xfe<xml/>\x00",
            )
        )
    finally:
        journal.close()
    await refused(client, 7)
    status, page = await api(client, "GET", "/quarantine")
    text = page["items"][0]["number"]

    status, shown = await api(client, "GET", f"/quarantine/{text}")
    assert status == 200
    assert shown["method"] == "GET" and shown["reason"] == "parser_error"
    assert shown["query"] == {"base64": False, "data": dlr_query(7), "size": len(dlr_query(7))}
    assert shown["body"] == {"base64": False, "data": "", "size": 0}
    assert "Authorization" not in shown["headers"]  # never kept
    assert shown["headers"]["Host"].startswith("127.0.0.1")

    status, shown = await api(client, "GET", f"/quarantine/{binary}")
    assert status == 200
    assert shown["body"]["base64"] is True
    assert base64.b64decode(shown["body"]["data"]) == b"\xff\xfe<xml/>\x00"
    assert shown["query"] == {"base64": False, "data": "a=%ff", "size": 5}
    assert shown["headers"] == {"Content-Type": "application/xml", "X-Trace": "t1"}
    assert shown["received_at"] == "2024-05-01T08:00:00+00:00"


@pytest.mark.parametrize("method", ["GET", "DELETE", "POST"])
async def test_one_request_unknown_or_badly_numbered(aiohttp_client, tmp_path, method) -> None:
    client = await aiohttp_client(create_app(make_settings(tmp_path)))
    suffix = "/replay" if method == "POST" else ""
    status, body = await api(client, method, f"/quarantine/999{suffix}")
    assert (status, body["error"]) == (404, "not_found")
    for bad in ("abc", "0", "-3", "١٢", str(2**63), "1.5"):
        status, body = await api(client, method, f"/quarantine/{bad}{suffix}")
        assert (status, body["error"]) == (400, "bad_parameter"), bad


async def test_replay_one_journals_its_events_or_says_why_not(
    aiohttp_client, tmp_path, broken_parser
) -> None:
    sink = MemorySink()
    client = await aiohttp_client(create_app(make_settings(tmp_path), sink=sink))
    await refused(client, 1)
    [number] = [q.seq for q in store.quarantined(tmp_path / store.JOURNAL_FILE)]
    status, still = await api(client, "POST", f"/quarantine/{number}/replay")
    assert (status, still) == (200, {"number": number, "events": 0, "refused": "parser_error"})
    broken_parser()
    status, done = await api(client, "POST", f"/quarantine/{number}/replay")
    assert (status, done) == (200, {"number": number, "events": 1, "refused": None})
    assert journaled(tmp_path) == 1

    async def published() -> bool:  # through the hub's own journal, to its worker
        return [e.data.message_id for e in sink.events] == ["1"]

    await eventually(published)
    status, page = await api(client, "GET", "/quarantine", params={"state": "replayed"})
    assert [i["number"] for i in page["items"]] == [number]
    assert page["items"][0]["replayed_at"] is not None
    # a second replay is harmless: the same event, which the worker marks duplicate
    status, again = await api(client, "POST", f"/quarantine/{number}/replay")
    assert (status, again["events"]) == (200, 1)
    assert journaled(tmp_path) == 2
    assert len(sink.events) == 1


async def test_drop_one(aiohttp_client, tmp_path, broken_parser) -> None:
    client = await aiohttp_client(create_app(make_settings(tmp_path)))
    await refused(client, 1, 2)
    first, second = (q.seq for q in store.quarantined(tmp_path / store.JOURNAL_FILE))
    answer = await client.delete(f"/api/v1/quarantine/{first}", headers=OPERATOR)
    assert answer.status == 204 and await answer.read() == b""
    assert [q.seq for q in store.quarantined(tmp_path / store.JOURNAL_FILE)] == [second]
    for method in ("DELETE", "GET"):
        status, body = await api(client, method, f"/quarantine/{first}")
        assert (status, body["error"]) == (404, "not_found")


# -- replaying all a filter matches, as a job ----------------------------------------------------


async def test_a_replay_job_runs_to_completion(aiohttp_client, tmp_path, broken_parser) -> None:
    sink = MemorySink()
    client = await aiohttp_client(create_app(make_settings(tmp_path), sink=sink))
    await refused(client, *range(1, 151))  # more than a batch
    assert await (await get_raw(client, BAD)).read() == b"probleme"  # stays refused
    broken_parser()
    status, job = await api(client, "POST", "/quarantine/replay", json={"provider": "isendpro"})
    assert status == 202, job
    assert job["total"] == 151 and job["state"] in ("running", "done")
    assert job["filter"]["provider"] == "isendpro" and job["filter"]["state"] == "waiting"
    location = f"/api/v1/jobs/{job['id']}"

    async def finished() -> bool:
        answer = await client.get(location, headers=OPERATOR)
        assert answer.status == 200
        job.update(await answer.json())
        return job["state"] != "running"

    await eventually(finished)
    assert job["state"] == "done", job
    assert (job["done"], job["events"], job["refused"]) == (151, 150, 1)
    assert job["refused_by_reason"] == {"bad_timestamp": 1}
    assert job["finished_at"] is not None and job["error"] is None
    assert journaled(tmp_path) == 150
    status, page = await api(client, "GET", "/quarantine")
    [waiting] = page["items"]  # what still waits: the request sent last (its first reason kept)
    status, shown = await api(client, "GET", f"/quarantine/{waiting['number']}")
    assert "date=never" in shown["query"]["data"]

    async def published() -> bool:
        return len(sink.events) == 150

    await eventually(published)
    status, status_doc = await api(client, "GET", "/status")
    assert status_doc["quarantine"]["waiting"] == 1


async def test_a_job_replays_only_what_its_filter_matches(
    aiohttp_client, tmp_path, broken_parser
) -> None:
    client = await aiohttp_client(create_app(make_settings(tmp_path)))
    await refused(client, 1, 2)
    broken_parser()
    since = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    status, job = await api(client, "POST", "/quarantine/replay", json={"since": since})
    assert (status, job["total"]) == (202, 0)
    status, job = await api(client, "POST", "/quarantine/replay", json={"reason": "timestamp"})
    assert (status, job["total"]) == (202, 0)

    async def idle() -> bool:
        _status, doc = await api(client, "GET", f"/jobs/{job['id']}")
        return doc["state"] == "done"

    await eventually(idle)
    status, page = await api(client, "GET", "/quarantine")
    assert len(page["items"]) == 2  # nothing replayed


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[]",
        b'{"provder": "isendpro"}',
        b'{"state": "lost"}',
        b'{"provider": 3}',
        b'{"since": "soon"}',
    ],
)
async def test_a_replay_job_wants_a_filter_it_understands(aiohttp_client, tmp_path, body) -> None:
    client = await aiohttp_client(create_app(make_settings(tmp_path)))
    answer = await client.post(
        "/api/v1/quarantine/replay",
        data=body,
        headers={**OPERATOR, "Content-Type": "application/json"},
    )
    assert answer.status == 400
    assert (await answer.json())["error"] == "bad_body"


async def test_one_job_at_a_time_and_a_bounded_memory(tmp_path) -> None:
    journal = Journal.open(tmp_path)
    try:
        jobs = Jobs(kept=3)
        first = jobs.start(journal, QuarantineSelection(), (0, 0))
        with pytest.raises(Busy) as busy:
            jobs.start(journal, QuarantineSelection(), (0, 0))
        assert busy.value.job is first
        started = [first]
        for _ in range(4):

            async def over() -> bool:
                return jobs.running() is None

            await eventually(over)
            started.append(jobs.start(journal, QuarantineSelection(), (0, 0)))
        await eventually(over)
        assert [jobs.get(j.id) is not None for j in started] == [False, False, True, True, True]
        assert all(j.state == "done" for j in started)
    finally:
        journal.close()


async def test_unknown_job(aiohttp_client, tmp_path) -> None:
    client = await aiohttp_client(create_app(make_settings(tmp_path)))
    status, body = await api(client, "GET", "/jobs/0123456789abcdef")
    assert (status, body["error"]) == (404, "not_found")


class Unwritable:
    """A journal whose disk is full: it is read (its path) but takes no events."""

    def __init__(self, path) -> None:
        self.path = path

    async def append(self, events) -> None:
        raise SinkUnavailable("the disk is full", reason="journal_full")


async def test_a_job_whose_journal_takes_no_events_fails_and_says_why(tmp_path) -> None:
    journal = Journal.open(tmp_path)
    try:
        entry = QuarantineEntry(
            received_at="2024-05-01T08:00:00+00:00",
            provider="isendpro",
            callback="delivery",
            method="GET",
            reason="parser_error",
            content_type="",
            headers="{}",
            query=dlr_query(1).encode(),
            body=b"",
        )
        number = await journal.quarantine(entry)
    finally:
        journal.close()
    jobs = Jobs()
    selection = QuarantineSelection()
    job = jobs.start(Unwritable(journal.path), selection, (1, number))  # type: ignore[arg-type]

    async def over() -> bool:
        return job.state != "running"

    await eventually(over)
    assert (job.state, job.error, job.done) == ("failed", "journal_full", 0)
    assert [q.seq for q in store.quarantined(journal.path)] == [number]  # still waiting
