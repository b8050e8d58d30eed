"""``GET /api/v1/messages/{provider}/{message_id}`` through the aiohttp test client: DMC's
documented reports of one SMS sent through the real callback path (sent, received, answered),
its timeline in the provider's time whatever the order of arrival, a final state never replaced
by a later one that is not, a provider's retry absent, replies linked both ways.

Each test runs on both read models (``index_backend``): this hub's own index, and the shared
index on a throwaway PostgreSQL (``HUB_INDEX_URL``), with the same assertions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from core.models import Channel, Event, EventData, Kind, Provider, State
from hub import journaled
from hub.app import create_app
from sinks import journal as store
from tests.support import (
    OPERATOR,
    PAYLOADS,
    SECRET,
    eventually,
    make_settings,
    replica_of,
    write_journal,
)

CRA = f"/callbacks/dmc/{SECRET}/cra"
SMS = "10020008248118"
"""The message of DMC's samples: sent, then received by the contact, who answered."""
SENT, RECEIVED, ANSWERED = (
    (PAYLOADS / "dmc" / f"seed-sms-{name}.body").read_bytes()
    for name in ("sent", "received", "answered")
)
CENTURY = 100 * 365 * 86400.0
"""DMC's samples are of 2014: events kept for a century, a retry recognized over one."""


def hub(data_dir: Path, backend: dict[str, Any]):
    settings = make_settings(data_dir, retention=CENTURY, dedup_window=CENTURY, **backend)
    return create_app(settings)


async def post(client, body: bytes) -> None:
    answer = await client.post(CRA, data=body, headers={"Content-Type": "text/xml"})
    assert (answer.status, await answer.text()) == (200, "OK")


async def indexed(client, data_dir: Path) -> None:
    """Waits for the pipeline worker to index everything journaled."""
    last = store.last_seq(data_dir / store.JOURNAL_FILE)

    async def done() -> bool:
        return journaled.processed(data_dir) >= last

    await eventually(done)


async def message(client, provider: str, message_id: str) -> dict:
    answer = await client.get(f"/api/v1/messages/{provider}/{message_id}", headers=OPERATOR)
    assert answer.status == 200, await answer.text()
    return await answer.json()


def later(body: bytes, old: str, new: str) -> bytes:
    return body.replace(old.encode(), new.encode())


async def test_a_dmc_sms_its_timeline_its_state_and_its_reply(
    aiohttp_client, index_backend, tmp_path
) -> None:
    data_dir = tmp_path / "data"
    client = await aiohttp_client(hub(data_dir, index_backend))
    for body in (SENT, RECEIVED, ANSWERED, SENT):  # the last one: DMC's retry, a duplicate
        await post(client, body)
    await indexed(client, data_dir)
    found = await message(client, "dmc", SMS)
    assert (found["state"], found["final"], found["failure"]) == ("delivered", True, None)
    assert (found["channel"], found["reference"], found["recipient"]) == (
        "sms",
        "654321",
        "+33601020304",
    )
    timeline = found["timeline"]
    assert [(e["state"], e["status"]["code"], e["final"]) for e in timeline] == [
        ("sent", "SENT", False),
        ("delivered", "RECEIVED", True),
    ]
    assert [e["time"] for e in timeline] == ["2014-07-11T07:52:12Z", "2014-07-11T07:52:15Z"]
    assert timeline[1]["status"]["meaning"] == "The message was received by the contact"
    # each entry carries its CloudEvents document, as journaled
    assert timeline[0]["event"]["data"]["raw"]["sms"]["@status"] == "SENT"
    assert timeline[0]["event"]["subject"] == SMS
    assert {e["replica"] for e in timeline} == {replica_of(data_dir, index_backend)}
    # the contact's answer is linked to it
    [reply] = found["replies"]
    assert (reply["kind"], reply["state"], reply["status"]["code"]) == (
        "inbound",
        "received",
        "ANSWERED",
    )
    assert reply["event"]["data"]["related_message_id"] == SMS
    assert reply["event"]["data"]["sender"] == "+33601020304"
    assert found["in_reply_to"] is None


async def test_out_of_order_a_final_state_stays(aiohttp_client, index_backend, tmp_path) -> None:
    data_dir = tmp_path / "data"
    client = await aiohttp_client(hub(data_dir, index_backend))
    # received first, then the older "sent": the timeline is in the provider's time
    await post(client, RECEIVED)
    await post(client, SENT)
    # then a "sent" that claims to be later than the delivery (a late, confused status)
    await post(client, later(SENT, "09:52:12", "10:30:00"))
    await indexed(client, data_dir)
    found = await message(client, "dmc", SMS)
    assert [e["state"] for e in found["timeline"]] == ["sent", "delivered", "sent"]
    assert (found["state"], found["final"]) == ("delivered", True)
    # nor by a status the hub does not know (state unknown, not final)
    await post(client, later(later(RECEIVED, "RECEIVED", "NOT_A_CODE"), "09:52:15", "11:00:00"))
    await indexed(client, data_dir)
    found = await message(client, "dmc", SMS)
    assert (found["timeline"][-1]["state"], found["timeline"][-1]["final"]) == ("unknown", False)
    assert found["state"] == "delivered"
    # a later final state does replace an earlier final one
    await post(client, later(later(RECEIVED, "RECEIVED", "ERROR"), "09:52:15", "11:30:00"))
    await indexed(client, data_dir)
    found = await message(client, "dmc", SMS)
    assert found["timeline"][-1]["status"]["code"] == "ERROR"
    assert (found["state"], found["final"]) == ("failed", True)


def made(message_id: str, kind: Kind, state: State, minutes: int, **fields: str) -> Event:
    when = datetime.now(UTC) - timedelta(hours=1) + timedelta(minutes=minutes)
    data = EventData(
        provider=Provider.SMSMODE,
        channel=Channel.SMS,
        kind=kind,
        state=state,
        final=state != State.SENT,
        message_id=message_id,
        raw={"id": message_id, "minutes": minutes},
        received_at=when,
        **fields,  # type: ignore[arg-type]
    )
    return Event.of(data, when)


@pytest.fixture
def conversation(tmp_path: Path, index_backend: dict[str, Any]) -> Path:
    """An sMsmode SMS (sent, delivered), two replies with ids of their own, another message."""
    data_dir = tmp_path / "data"
    write_journal(
        data_dir,
        [
            made("out-1", Kind.DELIVERY, State.SENT, 0, recipient="+33612345678"),
            made("out-1", Kind.DELIVERY, State.DELIVERED, 1, recipient="+33612345678"),
            made("in-1", Kind.INBOUND, State.RECEIVED, 5, related_message_id="out-1"),
            made("out-2", Kind.DELIVERY, State.DELIVERED, 6),
            made("in-2", Kind.INBOUND, State.RECEIVED, 9, related_message_id="out-1"),
            made("in-3", Kind.INBOUND, State.RECEIVED, 10, related_message_id="gone"),
        ],
        **index_backend,
    )
    return data_dir


async def test_replies_and_the_message_they_answer(
    aiohttp_client, index_backend, conversation
) -> None:
    client = await aiohttp_client(hub(conversation, index_backend))
    sent = await message(client, "smsmode", "out-1")
    assert [r["event"]["data"]["message_id"] for r in sent["replies"]] == ["in-1", "in-2"]
    assert sent["state"] == "delivered" and sent["in_reply_to"] is None
    reply = await message(client, "smsmode", "in-1")
    assert reply["in_reply_to"] == {
        "provider": "smsmode",
        "message_id": "out-1",
        "state": "delivered",
    }
    assert [e["state"] for e in reply["timeline"]] == ["received"]
    assert reply["replies"] == []
    # a reply to a message the hub has no event of: linked by id, its state unknown
    orphan = await message(client, "smsmode", "in-3")
    assert orphan["in_reply_to"] == {"provider": "smsmode", "message_id": "gone", "state": None}
    # and that message is found by its replies alone
    gone = await message(client, "smsmode", "gone")
    assert (gone["state"], gone["timeline"], len(gone["replies"])) == (None, [], 1)
    # the same id at another provider is another message
    other = await client.get("/api/v1/messages/dmc/out-1", headers=OPERATOR)
    assert other.status == 404


@pytest.mark.parametrize("path", ["/api/v1/messages/smsmode/nope", "/api/v1/messages/pigeon/out-1"])
async def test_an_unknown_message_is_a_404_problem(
    aiohttp_client, index_backend, conversation, path
) -> None:
    client = await aiohttp_client(hub(conversation, index_backend))
    answer = await client.get(path, headers=OPERATOR)
    assert answer.status == 404
    assert (await answer.json())["error"] == "not_found"
