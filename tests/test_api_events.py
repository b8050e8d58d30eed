"""``GET /api/v1/events`` through the aiohttp test client, on a journal the pipeline worker has
indexed: every filter, phone numbers as people type them, pagination across pages (no event
twice, none missing, new ones arriving meanwhile), duplicates absent, bad parameters refused.

Each test runs on both read models (``index_backend``): this hub's own index, and the shared
index on a throwaway PostgreSQL (``HUB_INDEX_URL``), with the same assertions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from core.models import Channel, Code, Event, EventData, Failure, Kind, Provider, State
from hub import journaled
from hub.app import create_app
from parsers.phones import to_e164
from tests.support import (
    DLR,
    OPERATOR,
    dlr_query,
    eventually,
    get_raw,
    make_settings,
    replica_of,
)
from tests.support import write_journal as write

T0 = datetime(2026, 3, 1, 10, tzinfo=UTC)
"""The provider's time of the first event; receptions a minute after each event's time."""
CENTURY = 100 * 365 * 86400.0
"""The hub's retention in these tests: it keeps events received in March."""


def hub(data_dir: Path, backend: dict[str, Any]):
    return create_app(make_settings(data_dir, retention=CENTURY, **backend))


def made(
    n: int,
    provider: Provider,
    *,
    state: State = State.DELIVERED,
    kind: Kind = Kind.DELIVERY,
    channel: Channel = Channel.SMS,
    hours: float = 0,
    failure: Failure | None = None,
    message_id: str | None = None,
    related: str | None = None,
    reference: str | None = None,
    sender: str | None = None,
    recipient: str | None = None,
) -> Event:
    when = T0 + timedelta(hours=hours)
    data = EventData(
        provider=provider,
        channel=channel,
        kind=kind,
        state=state,
        final=state not in (State.SENT, State.BUFFERED, State.ACCEPTED),
        failure=failure,
        message_id=message_id if message_id is not None else f"m{n}",
        related_message_id=related,
        reference=reference,
        sender=sender,
        recipient=recipient,
        status=Code(code=f"S{n}"),
        raw={"n": n},
        received_at=when + timedelta(minutes=1),
    )
    return Event.of(data, when)


FR = "+33612345678"
EVENTS = {
    1: made(1, Provider.ISENDPRO, reference="r1", recipient=FR),
    2: made(
        2, Provider.ISENDPRO, state=State.FAILED, failure=Failure.PERMANENT, hours=1,
        reference="r2", recipient="+33698765432",
    ),
    # eCall reads a national 06 12 34 56 78 as Swiss: the same typed number, another form
    3: made(3, Provider.ECALL, hours=23, recipient=to_e164("0612345678", "CH")),
    4: made(4, Provider.ECALL, hours=24, recipient="+41791234567"),
    5: made(5, Provider.DMC, channel=Channel.MAIL, state=State.SENT, hours=25, recipient="a@b.fr"),
    6: made(
        6, Provider.SMSMODE, kind=Kind.INBOUND, state=State.RECEIVED, hours=48, related="m7",
        sender=FR, recipient="36034",
    ),
    7: made(
        7, Provider.ISENDPRO, state=State.FAILED, failure=Failure.TEMPORARY, hours=49,
        recipient=FR,
    ),
}  # fmt: skip
"""Events by number: the journal holds them in this order, then a provider's retry of the first
(the same event received again: a duplicate)."""


def retry_of(e: Event) -> Event:
    later = e.data.received_at + timedelta(hours=1)
    return msgspec.structs.replace(e, data=msgspec.structs.replace(e.data, received_at=later))


@pytest.fixture
def data_dir(tmp_path: Path, index_backend: dict[str, Any]) -> Path:
    directory = tmp_path / "data"
    write(directory, [*EVENTS.values(), retry_of(EVENTS[1])], **index_backend)
    return directory


async def found(client, **params: str) -> list[int]:
    """The numbers of the events a lookup finds, in the order given (all pages)."""
    numbers: list[int] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        answer = await client.get("/api/v1/events", params=query, headers=OPERATOR)
        assert answer.status == 200, await answer.text()
        page = await answer.json()
        numbers += [item["event"]["data"]["raw"]["n"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return numbers


async def test_every_filter_finds_what_it_says(aiohttp_client, index_backend, data_dir) -> None:
    client = await aiohttp_client(hub(data_dir, index_backend))
    # newest first, the retry of the first event left out
    assert await found(client) == [7, 6, 5, 4, 3, 2, 1]
    assert await found(client, provider="ecall") == [4, 3]
    assert await found(client, channel="mail") == [5]
    assert await found(client, kind="inbound") == [6]
    assert await found(client, state="failed") == [7, 2]
    assert await found(client, state="FAILED") == [7, 2]  # as typed
    assert await found(client, failure="permanent") == [2]
    assert await found(client, message_id="m2") == [2]
    assert await found(client, reference="r1") == [1]  # once: its retry is a duplicate
    assert await found(client, provider="isendpro", state="failed", phone="0612345678") == [7]
    # the provider's time, and the reception time (a minute later)
    assert await found(client, since="2026-03-02") == [7, 6, 5, 4, 3]
    assert await found(client, until="2026-03-02") == [2, 1]
    assert await found(client, since="2026-03-01T11:00:00Z", until="2026-03-02T09:00") == [2]
    assert await found(client, received_since="2026-03-01T11:01:00+00:00") == [7, 6, 5, 4, 3, 2]
    assert await found(client, received_until="2026-03-01T11:01:00") == [1]
    assert await found(client, provider="ecall", state="failed") == []
    # an empty parameter is one not given (a form's empty field)
    assert await found(client, provider="", phone=" ") == [7, 6, 5, 4, 3, 2, 1]


@pytest.mark.parametrize(
    ("typed", "numbers"),
    [
        # national: French for every provider but eCall, whose parser reads it as Swiss
        ("06 12 34 56 78", [7, 6, 3, 1]),
        ("06.12.34.56.78", [7, 6, 3, 1]),
        ("0612345678", [7, 6, 3, 1]),
        # international forms are the same number everywhere: sender (6) or recipient
        ("+33612345678", [7, 6, 1]),
        ("+33 6 12 34 56 78", [7, 6, 1]),
        ("0033612345678", [7, 6, 1]),
        ("33612345678", [7, 6, 1]),
        ("0041 79 123 45 67", [4]),
        ("+41791234567", [4]),
        ("079 123 45 67", [4]),  # Swiss national: eCall's
        ("a@b.fr", [5]),  # not a number: as the event holds it
        ("36034", [6]),
        ("0699999999", []),
    ],
)
async def test_phone_numbers_as_people_type_them(
    aiohttp_client, index_backend, data_dir, typed, numbers
) -> None:
    client = await aiohttp_client(hub(data_dir, index_backend))
    assert await found(client, phone=typed) == numbers


@pytest.fixture
def many(tmp_path: Path, index_backend: dict[str, Any]) -> Path:
    """23 reports to the same number."""
    directory = tmp_path / "data"
    events = [made(n, Provider.ISENDPRO, hours=n, recipient=FR) for n in range(1, 24)]
    write(directory, events, **index_backend)
    return directory


async def test_pages_give_every_event_once_while_new_ones_arrive(
    aiohttp_client, index_backend, many
) -> None:
    data_dir = many
    client = await aiohttp_client(hub(data_dir, index_backend))
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": "5", "phone": "06 12 34 56 78", **({"cursor": cursor} if cursor else {})}
        page = await (await client.get("/api/v1/events", params=params, headers=OPERATOR)).json()
        assert len(page["items"]) <= 5
        seen += [item["event"]["data"]["raw"]["n"] for item in page["items"]]
        assert all(item["seq"] > 0 and item["received_at"].endswith("Z") for item in page["items"])
        pages += 1
        if pages == 1:  # a callback arrives between two pages: it is newer than them all
            await get_raw(client, f"{DLR}?{dlr_query(99)}")
            await eventually(lambda: caught_up(data_dir, 24))
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(range(23, 0, -1))
    assert pages == 5  # 5 + 5 + 5 + 5 + 3: no empty last page
    newest = await (await client.get("/api/v1/events?limit=1", headers=OPERATOR)).json()
    assert newest["items"][0]["event"]["data"]["message_id"] == "99"


async def caught_up(data_dir: Path, seq: int) -> bool:
    return journaled.processed(data_dir) >= seq


async def test_the_items_are_the_journaled_documents(
    aiohttp_client, index_backend, data_dir
) -> None:
    client = await aiohttp_client(hub(data_dir, index_backend))
    page = await (await client.get("/api/v1/events?message_id=m2", headers=OPERATOR)).json()
    [item] = page["items"]
    assert Event.from_json(msgspec.json.encode(item["event"])) == EVENTS[2]
    assert item["received_at"] == "2026-03-01T11:01:00Z"
    # the replica that received it: null with the local index (this hub's own)
    assert (item["seq"], item["replica"]) == (2, replica_of(data_dir, index_backend))


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("state=bogus", "state"),
        ("provider=nobody", "provider"),
        ("kind=1", "kind"),
        ("channel=pigeon", "channel"),
        ("failure=maybe", "failure"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=ten", "limit"),
        ("limit=%D9%A3", "limit"),  # an Arabic-Indic digit: isdigit(), not a limit
        ("cursor=nonsense", "cursor"),
        ("cursor=-1", "cursor"),
        ("cursor=0", "cursor"),
        ("cursor=99999999999999999999999", "cursor"),  # past SQLite's integers
        ("cursor=%C3%A9t%C3%A9", "cursor"),
        ("since=tomorrow", "since"),
        ("until=2026-13-01", "until"),
        ("received_since=99999999999d", "received_since"),
        ("colour=red", "colour"),
    ],
)
async def test_a_bad_parameter_is_a_400_naming_it(aiohttp_client, tmp_path, query, named) -> None:
    client = await aiohttp_client(hub(tmp_path / "data", {}))  # refused before any lookup
    answer = await client.get(f"/api/v1/events?{query}", headers=OPERATOR)
    assert answer.status == 400
    body = await answer.json()
    assert body["error"] == "bad_parameter" and body["detail"].startswith(f"{named}:")


async def test_the_lookups_want_the_token(aiohttp_client, index_backend, data_dir) -> None:
    client = await aiohttp_client(hub(data_dir, index_backend))
    for path in ("/api/v1/events", "/api/v1/messages/isendpro/m1"):
        assert (await client.get(path)).status == 401
        wrong = {"Authorization": "Bearer not-the-token"}
        assert (await client.get(path, headers=wrong)).status == 401
        assert (await client.get(path, headers=OPERATOR)).status == 200


async def test_no_journal_yet_finds_nothing(aiohttp_client, index_backend, tmp_path) -> None:
    client = await aiohttp_client(hub(tmp_path / "data", index_backend))
    page = await (await client.get("/api/v1/events?phone=0612345678", headers=OPERATOR)).json()
    assert page == {"items": [], "next_cursor": None}


async def test_the_document_says_which_replica_an_event_came_from(aiohttp_client, tmp_path) -> None:
    client = await aiohttp_client(hub(tmp_path / "data", {}))
    document = await (await client.get("/api/v1/openapi.json", headers=OPERATOR)).json()
    schemas = document["components"]["schemas"]
    for name in ("EventItem_Event_", "TimelineEntry_Event_"):
        assert "replica" in schemas[name]["required"]
        assert schemas[name]["properties"]["replica"] == {
            "anyOf": [{"type": "string"}, {"type": "null"}]
        }
