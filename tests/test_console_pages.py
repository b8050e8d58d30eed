"""The console's overview, events and message pages at the HTTP level (aiohttp's test client,
an operator by the bearer token): the filters in the address (a phone number as typed), the
pages of events and their links to each message, the live view's rows, the CSV export (the
filter applied, the bound, cells a spreadsheet would read as formulas made text), one message's
timeline, replies and documents, the overview's plot and status, and the quarantine's list
filtered and replaying all that a filter matches as a background job.

The events and message pages and the overview's plot run on both read models (``index_backend``): this hub's own
index, and the shared index on a throwaway PostgreSQL (``HUB_INDEX_URL``)."""

from __future__ import annotations

import asyncio
import csv
import html
import io
import re
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from core.models import Channel, Code, Event, EventData, Failure, Kind, Provider, State
from hub.app import create_app
from hub.console import events_page
from sinks import journal as store
from tests.support import (
    DLR,
    OPERATOR,
    SEED_DLR,
    dlr_query,
    eventually,
    get_raw,
    keep_refused,
    make_settings,
    replica_of,
    write_journal,
)

CENTURY = 100 * 365 * 86400.0
T0 = datetime(2026, 3, 1, 10, tzinfo=UTC)
FR = "+33612345678"


def made(
    n: int,
    *,
    provider: Provider = Provider.ISENDPRO,
    state: State = State.DELIVERED,
    kind: Kind = Kind.DELIVERY,
    minutes: float = 0,
    received: datetime | None = None,
    message_id: str | None = None,
    related: str | None = None,
    recipient: str | None = None,
    sender: str | None = None,
    text: str | None = None,
    failure: Failure | None = None,
) -> Event:
    when = T0 + timedelta(minutes=minutes)
    data = EventData(
        provider=provider,
        channel=Channel.SMS,
        kind=kind,
        state=state,
        final=state not in (State.SENT, State.ACCEPTED),
        failure=failure,
        message_id=message_id if message_id is not None else f"m{n}",
        related_message_id=related,
        recipient=recipient,
        sender=sender,
        text=text,
        status=Code(code=f"S{n}", meaning=f"status {n}"),
        error=Code(code="E1", meaning="absent") if state == State.FAILED else None,
        raw={"n": n, "statut": f"S{n}"},
        received_at=received or when + timedelta(minutes=1),
    )
    return Event.of(data, when)


EVENTS = [
    made(1, message_id="42", state=State.SENT, recipient=FR),
    made(2, message_id="42", state=State.DELIVERED, minutes=5, recipient=FR),
    made(3, recipient="+33698765432", state=State.FAILED, failure=Failure.PERMANENT),
    made(
        4, kind=Kind.INBOUND, state=State.RECEIVED, message_id="r4", related="42", sender=FR,
        recipient="36034", minutes=9, text="=HYPERLINK(\"http://evil\") <b>hi</b>",
    ),
    made(5, provider=Provider.DMC, recipient="@someone", text="-1+2"),
]  # fmt: skip


@pytest.fixture
def data_dir(tmp_path: Path, index_backend: dict[str, Any]) -> Path:
    directory = tmp_path / "data"
    write_journal(directory, EVENTS, **index_backend)
    return directory


def hub(data_dir: Path, backend: dict[str, Any] | None = None):
    return create_app(make_settings(data_dir, retention=CENTURY, **(backend or {})))


async def page(client, path: str, status: int = 200, **params: str) -> str:
    answer = await client.get(path, params=params, headers=OPERATOR, allow_redirects=False)
    assert answer.status == status, await answer.text()
    return await answer.text()


def seqs(text: str) -> list[int]:
    return [int(s) for s in re.findall(r'<tr data-seq="(\d+)"[ >]', text)]


async def test_the_events_page_finds_a_phone_number_as_typed(
    aiohttp_client, index_backend, data_dir
) -> None:
    client = await aiohttp_client(hub(data_dir, index_backend))
    text = await page(client, "/console/events")
    assert seqs(text) == [5, 4, 3, 2, 1]
    text = await page(client, "/console/events", phone="06 12 34 56 78")
    assert seqs(text) == [4, 2, 1]  # recipient or sender
    assert 'value="06 12 34 56 78"' in text, "the form shows the filter"
    assert 'href="/console/messages/isendpro/42"' in text
    assert "/console/events.csv?phone=06+12+34+56+78" in text, "the export is of the filter"
    assert seqs(await page(client, "/console/events", state="failed", provider="isendpro")) == [3]
    assert "<option selected>failed</option>" in await page(
        client, "/console/events", state="failed"
    )
    # a reply links to its own message page; what it holds is escaped
    text = await page(client, "/console/events", kind="inbound")
    assert 'href="/console/messages/isendpro/r4"' in text and "<b>hi" not in text
    # a filter that cannot be read: the page says which, with a 400
    text = await page(client, "/console/events", 400, since="last tuesday")
    assert "since: expected" in html.unescape(text)


async def test_the_events_pages_go_on_with_the_cursor(
    aiohttp_client, index_backend, data_dir
) -> None:
    client = await aiohttp_client(hub(data_dir, index_backend))
    shown: list[int] = []
    path, params = "/console/events", {"limit": "2"}
    while True:
        text = await page(client, path, **params)
        shown += seqs(text)
        older = re.search(r'href="(/console/events\?[^"]+)" rel="next"', text)
        if older is None:
            break
        path, params = html.unescape(older.group(1)), {}
        assert "limit=2" in path and "cursor=" in path
    assert shown == [5, 4, 3, 2, 1]


async def test_the_live_view_gives_what_came_since(aiohttp_client, index_backend, tmp_path) -> None:
    data_dir = tmp_path / "data"
    client = await aiohttp_client(create_app(make_settings(data_dir, **index_backend)))
    text = await page(client, "/console/events", live="1", phone="0612345678")
    assert 'id="live" data-after="0"' in text and " checked>" in text
    answer = await get_raw(client, f"{DLR}?{dlr_query(7001)}")
    assert answer.status == 200

    # the real callback path: found once the worker (in the app's loop) has indexed it
    async def arrived() -> bool:
        answer = await client.get(
            "/console/events/live", params={"after": "0", "phone": "0612345678"}, headers=OPERATOR
        )
        assert answer.status == 200
        return (await answer.json())["count"] == 1

    await eventually(arrived)
    answer = await client.get("/console/events/live", params={"after": "0"}, headers=OPERATOR)
    found = await answer.json()
    assert found["last"] == 1 and found["more"] is False
    assert 'data-seq="1"' in found["rows"] and "/console/messages/isendpro/7001" in found["rows"]
    # nothing past the newest; another number's filter: nothing
    answer = await client.get("/console/events/live", params={"after": "1"}, headers=OPERATOR)
    assert (await answer.json())["count"] == 0
    answer = await client.get(
        "/console/events/live", params={"after": "0", "phone": "0698765432"}, headers=OPERATOR
    )
    assert (await answer.json())["count"] == 0
    for bad in ("x", "-1", str(2**64)):  # not a seq: a 400, never a 500
        answer = await client.get("/console/events/live", params={"after": bad}, headers=OPERATOR)
        assert answer.status == 400 and (await answer.json())["error"] == "bad_parameter"


async def test_a_message_id_of_any_characters_has_its_page(
    aiohttp_client, index_backend, tmp_path
) -> None:
    data_dir = tmp_path / "data"
    events = [made(1, message_id="a/b c%é\x00")]  # a NUL too: PostgreSQL's text holds none
    await asyncio.to_thread(partial(write_journal, data_dir, events, **index_backend))
    client = await aiohttp_client(hub(data_dir, index_backend))
    text = await page(client, "/console/events")
    assert 'href="/console/messages/isendpro/a%2Fb%20c%25%C3%A9%00"' in text
    text = await page(client, "/console/messages/isendpro/a%2Fb%20c%25%C3%A9%00")
    assert "Message <code>a/b c%é\x00</code>" in text
    assert 'id="current-state">delivered</span>' in text


async def test_the_csv_export_of_a_filter(aiohttp_client, index_backend, data_dir) -> None:
    client = await aiohttp_client(hub(data_dir, index_backend))
    answer = await client.get(
        "/console/events.csv", params={"phone": "06 12 34 56 78"}, headers=OPERATOR
    )
    assert answer.status == 200 and answer.content_type == "text/csv"
    assert answer.headers["Content-Disposition"].startswith('attachment; filename="events-')
    assert "X-Export-Cut" not in answer.headers
    rows = list(csv.DictReader(io.StringIO(await answer.text())))
    assert [r["seq"] for r in rows] == ["4", "2", "1"]
    # cells a spreadsheet would read as a formula are text: a ' before = + - @
    assert rows[1]["recipient"] == "'" + FR
    assert rows[0]["text"] == '\'=HYPERLINK("http://evil") <b>hi</b>'
    assert rows[0]["related_message_id"] == "42" and rows[2]["state"] == "sent"
    answer = await client.get("/console/events.csv", params={"provider": "dmc"}, headers=OPERATOR)
    [dmc] = list(csv.DictReader(io.StringIO(await answer.text())))
    assert (dmc["recipient"], dmc["text"]) == ("'@someone", "'-1+2")


async def test_the_csv_export_is_bounded_and_says_where_it_was_cut(
    aiohttp_client, index_backend, data_dir, monkeypatch
) -> None:
    monkeypatch.setattr(events_page, "CSV_ROWS", 3)
    client = await aiohttp_client(hub(data_dir, index_backend))
    answer = await client.get("/console/events.csv", headers=OPERATOR)
    assert answer.headers["X-Export-Cut"] == "3"
    lines = list(csv.reader(io.StringIO(await answer.text())))
    assert [line[0] for line in lines[1:4]] == ["5", "4", "3"]
    assert lines[4] == ["# cut at 3 rows: more events match (narrow the filter)"]
    assert len(lines) == 5
    # exactly the bound, nothing more matching: not cut
    answer = await client.get("/console/events.csv", params={"phone": FR}, headers=OPERATOR)
    assert "X-Export-Cut" not in answer.headers
    assert len(list(csv.reader(io.StringIO(await answer.text())))) == 4


async def test_a_message_s_timeline_reply_and_documents(
    aiohttp_client, index_backend, data_dir
) -> None:
    client = await aiohttp_client(hub(data_dir, index_backend))
    text = await page(client, "/console/messages/isendpro/42")
    assert re.search(r'id="current-state">delivered</span> \(final\)', text)
    timeline, _, replies = text.partition("<h2>Timeline</h2>")[2].partition("<h2>Replies</h2>")
    assert timeline.index(">sent<") < timeline.index(">delivered<"), "in the provider's time"
    assert "status <code>S1</code> status 1" in timeline
    # each event: the raw fields, the normalized event, the CloudEvents document, copy buttons
    replica = replica_of(data_dir, index_backend)  # with the shared index, in each event's id
    for seq in (1, 2):
        anchor = f"e{seq}-{replica}" if replica else f"e{seq}"
        for part in ("raw", "data", "doc"):
            assert f'<pre id="{anchor}-{part}">' in timeline
            assert f'data-copy-from="{anchor}-{part}"' in timeline
    assert "&#34;specversion&#34;: &#34;1.0&#34;" in timeline
    assert "&#34;statut&#34;: &#34;S1&#34;" in timeline
    # the reply, its text escaped, linked to its own page, which links back
    assert 'href="/console/messages/isendpro/r4"' in replies and "&lt;b&gt;hi&lt;/b&gt;" in replies
    text = await page(client, "/console/messages/isendpro/r4")
    assert re.search(
        r'answers</dt><dd><a href="/console/messages/isendpro/42">42</a> \(delivered\)', text
    )
    await page(client, "/console/messages/isendpro/nothing", 404)
    await page(client, "/console/messages/nobody/42", 404)


async def test_the_overview_plots_the_last_hour(aiohttp_client, tmp_path, index_backend) -> None:
    now = datetime.now(UTC)
    data_dir = tmp_path / "data"
    await asyncio.to_thread(
        partial(
            write_journal,
            data_dir,
            [
                made(1, received=now - timedelta(minutes=10)),
                made(2, received=now - timedelta(minutes=10), state=State.FAILED),
                made(3, received=now - timedelta(minutes=2), provider=Provider.DMC),
                made(4, received=now - timedelta(hours=3)),  # before the hour: not counted
            ],
            **index_backend,
        )
    )
    await keep_refused(data_dir, query=SEED_DLR)
    client = await aiohttp_client(hub(data_dir, index_backend))
    answer = await client.get("/console/", headers=OPERATOR, allow_redirects=False)
    assert answer.headers["Location"] == "/console/overview"
    text = await page(client, "/console/overview")
    assert re.search(r'id="quarantine-size">1<', text)
    assert re.search(r'id="broker">none<', text) and re.search(r'id="backlog">—<', text)
    assert "isendpro</a>: 2 events" in text and "dmc</a>: 1 events" in text
    plots = {
        name: section.split("</section>")[0]
        for name, section in re.findall(r'id="plot-(\w+)"(.*?)(?=id="plot-|$)', text, re.S)
    }
    assert sorted(plots) == ["dmc", "isendpro"]
    assert re.findall(r'<rect class="s-(\w+)"', plots["dmc"]) == ["good"]
    # isendpro's minute: one delivered, one failed, stacked in one bar
    assert sorted(re.findall(r'<rect class="s-(\w+)"', plots["isendpro"])) == ["bad", "good"]
    assert "1 bad (isendpro)" in plots["isendpro"] and "1 good (isendpro)" in plots["isendpro"]


async def test_replay_all_runs_as_a_job_the_page_follows(aiohttp_client, tmp_path) -> None:
    data_dir = tmp_path / "data"
    first = await keep_refused(data_dir, query=SEED_DLR)
    await keep_refused(data_dir, query=dlr_query(8001).encode())
    client = await aiohttp_client(hub(data_dir))
    answer = await client.post(
        "/console/quarantine/replay", headers=OPERATOR, allow_redirects=False
    )
    assert answer.status == 303
    location = answer.headers["Location"]
    job = re.fullmatch(r"/console/quarantine\?job=([0-9a-f]+)", location)
    assert job, location

    async def done() -> bool:
        answer = await client.get(f"/api/v1/jobs/{job.group(1)}", headers=OPERATOR)
        return (await answer.json())["state"] == "done"

    await eventually(done)
    text = await page(client, location)
    assert f'data-job="{job.group(1)}" data-state="done"' in text
    assert "Done: 2 of 2 requests replayed, 2 events journaled, 0 still refused." in text
    [item] = store.quarantined(data_dir / store.JOURNAL_FILE, seq=first)
    assert item.replayed_at is not None


def listed(text: str) -> list[int]:
    """The quarantine's numbers a list shows."""
    return [int(n) for n in re.findall(r'<td><a href="/console/quarantine/(\d+)">', text)]


async def test_the_quarantine_filter_narrows_the_list_and_the_replay(
    aiohttp_client, tmp_path
) -> None:
    data_dir = tmp_path / "data"
    stamp = await keep_refused(data_dir, query=SEED_DLR, reason="bad_timestamp")
    first = await keep_refused(data_dir, query=dlr_query(8001).encode())
    second = await keep_refused(data_dir, query=dlr_query(8002).encode())
    client = await aiohttp_client(hub(data_dir))
    text = await page(client, "/console/quarantine")
    assert listed(text) == [second, first, stamp] and "3 waiting requests match." in text
    text = await page(client, "/console/quarantine", reason="TIMESTAMP")
    assert listed(text) == [stamp] and "1 waiting request matches." in text
    assert 'name="reason" value="TIMESTAMP"' in text  # the form shows the filter of the address
    assert 'data-confirm="Replay all 1 requests that match the filter?"' in text
    text = await page(client, "/console/quarantine", provider="dmc")
    assert listed(text) == [] and "0 waiting requests match." in text and "Replay all" not in text
    text = await page(client, "/console/quarantine", since="2024-05-01T10:00:01Z")
    assert listed(text) == []
    text = await page(client, "/console/quarantine", until="2024-05-01T10:00:01Z", state="all")
    assert listed(text) == [second, first, stamp]
    text = await page(client, "/console/quarantine", 400, since="yesterday")
    assert 'class="error"' in text and listed(text) == []

    # replay all that match: the job replays the matching ones only, the filter kept
    answer = await client.post(
        "/console/quarantine/replay",
        data={"reason": "parser", "callback": "delivery", "since": ""},
        headers=OPERATOR,
        allow_redirects=False,
    )
    assert answer.status == 303
    location = answer.headers["Location"]
    job = re.fullmatch(
        r"/console/quarantine\?callback=delivery&reason=parser&job=([0-9a-f]+)", location
    )
    assert job, location

    async def done() -> bool:
        answer = await client.get(f"/api/v1/jobs/{job.group(1)}", headers=OPERATOR)
        return (await answer.json())["state"] == "done"

    await eventually(done)
    text = await page(client, location)
    assert "Done: 2 of 2 requests replayed, 2 events journaled, 0 still refused." in text
    assert 'href="/console/quarantine?callback=delivery&amp;reason=parser">Reload the list' in text
    assert listed(text) == []  # those waiting that match: none left
    path = data_dir / store.JOURNAL_FILE
    replayed = {q.seq for q in store.quarantined(path, include_replayed=True) if q.replayed_at}
    assert replayed == {first, second}
    text = await page(client, "/console/quarantine", state="replayed")
    assert listed(text) == [second, first] and "2 replayed requests match." in text
    text = await page(client, "/console/quarantine", all="1")  # the page's address before filters
    assert listed(text) == [second, first, stamp] and "(1 waiting)" in text
    bad = await client.post("/console/quarantine/replay", data={"state": "some"}, headers=OPERATOR)
    assert bad.status == 400


async def test_the_pages_and_the_export_are_for_an_operator_only(
    aiohttp_client, index_backend, data_dir
) -> None:
    client = await aiohttp_client(hub(data_dir, index_backend))
    for path in [
        "/console/overview",
        "/console/events?phone=0612345678",
        "/console/events/live?after=0",
        "/console/events.csv?phone=0612345678",
        "/console/messages/isendpro/42",
    ]:
        answer = await client.get(path, allow_redirects=False)
        assert answer.status == 303, path
        assert answer.headers["Location"].startswith("/console/login?next=")
        assert FR not in await answer.text()
