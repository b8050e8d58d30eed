"""The read model on the shared index (``HUB_INDEX_URL``, a throwaway PostgreSQL) beyond what
the API's and the console's suites check on both backends: two replicas' events in one view
(their ``seq`` the same numbers, their pages on the shared order), one message whose events
two replicas received, and the hub's own read pool: a database away is a 503 problem for the
API and a readable page for the console while the callbacks are answered at once; back, the
lookups answer again; at shutdown the pool is closed."""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import aiohttp

from core.models import Channel, Code, Event, EventData, Kind, Provider, State
from hub.app import create_app
from tests.support import (
    DLR,
    OPERATOR,
    dlr_query,
    eventually,
    get_raw,
    make_settings,
    replica_of,
    sql,
    write_journal,
)

T0 = datetime(2026, 3, 1, 10, tzinfo=UTC)
CENTURY = 100 * 365 * 86400.0
OPEN_LOOKUPS = (
    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'callback-hub (lookups)'"
)
"""The read pool's connections (``sinks.index_pg.reading`` names them so)."""


def made(n: int, state: State, *, message_id: str, minutes: float) -> Event:
    when = T0 + timedelta(minutes=minutes)
    data = EventData(
        provider=Provider.ISENDPRO,
        channel=Channel.SMS,
        kind=Kind.DELIVERY,
        state=state,
        final=state != State.SENT,
        message_id=message_id,
        recipient="+33612345678",
        status=Code(code=f"S{n}"),
        raw={"n": n},
        received_at=when + timedelta(minutes=1),
    )
    return Event.of(data, when)


def hub(data_dir: Path, url: str, **settings: float):
    return create_app(make_settings(data_dir, index_url=url, retention=CENTURY, **settings))


async def test_one_view_of_two_replicas_events(aiohttp_client, database, tmp_path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    # A took the message's "sent" and two others, B its delivery: seq 1, 2, 3 in both journals
    await asyncio.to_thread(
        partial(
            write_journal,
            a,
            [
                made(1, State.SENT, message_id="42", minutes=0),
                made(2, State.DELIVERED, message_id="43", minutes=1),
                made(3, State.DELIVERED, message_id="44", minutes=2),
            ],
            index_url=database,
        )
    )
    await asyncio.to_thread(
        partial(
            write_journal,
            b,
            [
                made(4, State.DELIVERED, message_id="42", minutes=5),
                made(5, State.FAILED, message_id="45", minutes=6),
                made(6, State.DELIVERED, message_id="46", minutes=7),
            ],
            index_url=database,
        )
    )
    name_a, name_b = replica_of(a, {"index_url": database}), replica_of(b, {"index_url": database})
    client = await aiohttp_client(hub(b, database))  # B's hub
    seen: list[tuple[int, str, int]] = []
    cursor = None
    while True:  # pages of two, on the shared order: each event once
        params = {"limit": "2", **({"cursor": str(cursor)} if cursor else {})}
        page = await (await client.get("/api/v1/events", params=params, headers=OPERATOR)).json()
        seen += [(i["event"]["data"]["raw"]["n"], i["replica"], i["seq"]) for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [
        (6, name_b, 3), (5, name_b, 2), (4, name_b, 1),
        (3, name_a, 3), (2, name_a, 2), (1, name_a, 1),
    ]  # fmt: skip
    # one message, two replicas: its timeline in the provider's time, its state B's report
    answer = await client.get("/api/v1/messages/isendpro/42", headers=OPERATOR)
    found = await answer.json()
    assert [(e["state"], e["replica"], e["seq"]) for e in found["timeline"]] == [
        ("sent", name_a, 1),
        ("delivered", name_b, 1),
    ]
    assert (found["state"], found["final"]) == ("delivered", True)
    # the console's page of it: each event's documents under an id of its own
    text = await (await client.get("/console/messages/isendpro/42", headers=OPERATOR)).text()
    assert f'<pre id="e1-{name_a}-raw">' in text and f'<pre id="e1-{name_b}-raw">' in text
    assert f'at <span class="replica">{name_a}</span>' in text
    # the events page says which replica took each
    text = await (await client.get("/console/events", headers=OPERATOR)).text()
    assert re.findall(r'data-replica="([^"]+)"', text) == [name_b] * 3 + [name_a] * 3
    assert '<th scope="col">replica</th>' in text


async def test_the_database_away_is_a_503_and_the_callbacks_do_not_wait(
    aiohttp_client, postgres, database, tmp_path, caplog
) -> None:
    caplog.set_level(logging.WARNING)
    data_dir = tmp_path / "data"
    url = database.replace("hub@", "hub:s3cret@")  # a password no log line may hold
    events = [made(1, State.DELIVERED, message_id="42", minutes=0)]
    await asyncio.to_thread(partial(write_journal, data_dir, events, index_url=database))
    client = await aiohttp_client(hub(data_dir, url, index_timeout=1.0))
    answer = await client.get("/api/v1/events", headers=OPERATOR)
    assert len((await answer.json())["items"]) == 1
    try:
        postgres.stop()
        answer = await client.get("/api/v1/events?phone=0612345678", headers=OPERATOR)
        assert answer.status == 503
        problem = await answer.json()
        assert problem["error"] == "index_unavailable"
        assert problem["detail"].startswith("The shared index (PostgreSQL) cannot be reached")
        answer = await client.get("/api/v1/messages/isendpro/42", headers=OPERATOR)
        assert (answer.status, (await answer.json())["error"]) == (503, "index_unavailable")
        # the console: its page, with the sentence, not a traceback
        answer = await client.get("/console/events?phone=0612345678", headers=OPERATOR)
        text = await answer.text()
        assert answer.status == 503 and 'class="error"' in text
        assert "The shared index (PostgreSQL) cannot be reached now" in text
        assert "Traceback" not in text
        answer = await client.get("/console/messages/isendpro/42", headers=OPERATOR)
        assert answer.status == 503 and "cannot be reached now" in await answer.text()
        answer = await client.get("/console/events/live?after=0", headers=OPERATOR)
        assert (answer.status, (await answer.json())["error"]) == (503, "index_unavailable")
        answer = await client.get("/console/events.csv", headers=OPERATOR)
        assert answer.status == 503
        # lookups waiting on it (more than its threads), a callback meanwhile: answered at once
        lookups = [
            asyncio.ensure_future(client.get("/api/v1/events", headers=OPERATOR)) for _ in range(8)
        ]
        callback = await get_raw(client, f"{DLR}?{dlr_query(7)}")
        assert await callback.text() == "validation"
        assert not all(task.done() for task in lookups), "the callback waited for the lookups"
        assert {(await task).status for task in lookups} == {503}
    finally:
        postgres.start()

    async def answered() -> bool:
        return (await client.get("/api/v1/events", headers=OPERATOR)).status == 200

    await eventually(answered)
    assert "shared index: a lookup not answered" in caplog.text
    assert "s3cret" not in caplog.text


async def test_the_read_pool_is_closed_at_shutdown(
    aiohttp_server, postgres, database, tmp_path
) -> None:
    server = await aiohttp_server(hub(tmp_path / "data", database))
    async with aiohttp.ClientSession() as http:
        answer = await http.get(server.make_url("/api/v1/events"), headers=OPERATOR)
        assert answer.status == 200  # read (nothing there yet)

    def connections() -> int:
        return int(sql(postgres, database, OPEN_LOOKUPS)[0][0])

    assert connections() == 1  # opened when asked, kept for the next lookup
    await server.close()  # the app's shutdown: its cleanup contexts

    async def closed() -> bool:
        return connections() == 0

    await eventually(closed)
