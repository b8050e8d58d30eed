"""GET /events (hub.sse) on a real hub app and broker: matching events, resumption, the token."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import orjson
import pytest

from hub import sse
from hub.app import create_app
from sinks.rabbitmq import StreamRetention, declare_topology
from tests.support import DLR, dlr_query, eventually, make_settings, metric

pytestmark = pytest.mark.broker

TOKEN = "events-token-0123456789"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


async def start_hub(aiohttp_client, rabbit, tmp_path: Path, exchange: str, *, stream: bool = True):
    settings = make_settings(
        tmp_path / "data", rabbitmq_url=rabbit.url, exchange=exchange, stream=stream
    )
    app = create_app(settings)
    sse.setup(app, rabbitmq_url=rabbit.url, exchange=exchange, token=TOKEN, heartbeat=0.5)
    client = await aiohttp_client(app)

    async def connected() -> bool:
        return metric(await (await client.get("/metrics")).text(), "hub_broker_connected") == 1

    await eventually(connected)
    return client


@pytest.fixture
async def hub(aiohttp_client, rabbit, channel, tmp_path: Path, exchange_name: str):
    settings = make_settings(tmp_path)
    retention = StreamRetention(settings.stream_max_age, settings.stream_max_bytes)
    await declare_topology(channel, exchange_name, stream=retention)
    return await start_hub(aiohttp_client, rabbit, tmp_path, exchange_name)


class Reader:
    """Reads an SSE response: events as (id, data) and the comments seen."""

    def __init__(self, response) -> None:
        self.response = response
        self.comments: list[str] = []
        self.fields: list[str] = []

    async def events(self, count: int) -> list[tuple[str, dict]]:
        got: list[tuple[str, dict]] = []
        fields: dict[str, list[str]] = {}
        async with asyncio.timeout(30):
            while len(got) < count:
                line = (await self.response.content.readline()).decode()
                assert line.endswith("\n"), f"stream ended after {got}"
                line = line[:-1]
                if line.startswith(":"):
                    self.comments.append(line)
                elif line:
                    name, _, value = line.partition(":")
                    fields.setdefault(name, []).append(value.removeprefix(" "))
                    self.fields.append(name)
                elif "data" in fields:
                    got.append((fields["id"][-1], orjson.loads("\n".join(fields["data"]))))
                    fields = {}
        return got

    async def comment(self) -> str:
        async with asyncio.timeout(30):
            while not self.comments:
                line = (await self.response.content.readline()).decode()
                assert line, "stream ended"
                if line.startswith(":"):
                    self.comments.append(line.strip())
        return self.comments[0]


async def callbacks(hub, *statuts: str, first: int = 1) -> None:
    for n, statut in enumerate(statuts, start=first):
        resp = await hub.get(f"{DLR}?{dlr_query(n, statut=statut)}")
        assert await resp.read() == b"validation"


async def test_streams_matching_events_and_resumes_from_last_event_id(hub) -> None:
    async with hub.get("/events?pattern=*.*.delivery.failed", headers=BEARER) as resp:
        assert resp.status == 200
        assert resp.content_type == "text/event-stream"
        assert resp.headers["Cache-Control"] == "no-cache"
        await callbacks(hub, "2", "0", "2", "2")  # stream offsets 0 to 3; 1 is delivered
        got = await Reader(resp).events(3)
    assert [i for i, _ in got] == ["0", "2", "3"]
    assert [doc["data"]["message_id"] for _, doc in got] == ["1", "3", "4"]
    assert all(doc["data"]["state"] == "failed" for _, doc in got)
    assert got[0][1]["specversion"] == "1.0"

    resume = {**BEARER, "Last-Event-ID": "0"}
    async with hub.get("/events?pattern=*.*.delivery.failed", headers=resume) as resp:
        again = await Reader(resp).events(2)
    assert again == got[1:]


async def test_reads_history_from_the_first_event(hub) -> None:
    await callbacks(hub, "0", "2", "0")
    async with hub.get("/events?from=first&pattern=isendpro.%23", headers=BEARER) as resp:
        got = await Reader(resp).events(3)
    assert [(i, doc["data"]["message_id"]) for i, doc in got] == [
        ("0", "1"),
        ("1", "2"),
        ("2", "3"),
    ]


async def test_heartbeats_while_nothing_matches(hub) -> None:
    async with hub.get("/events?pattern=dmc.%23", headers=BEARER) as resp:
        await callbacks(hub, "0")  # an iSendPro event: not for this pattern
        reader = Reader(resp)
        assert await reader.comment() == ": heartbeat"
    assert "data" not in reader.fields


@pytest.mark.parametrize(
    ("path", "headers", "said"),
    [
        ("/events", {}, "a bearer token is needed"),
        ("/events", {"Authorization": "Bearer not-the-token"}, "wrong token"),
        ("/events", {"Authorization": f"Basic {TOKEN}"}, "a bearer token is needed"),
        ("/events?token=not-the-token", {}, "wrong token"),
        ("/events?token=", {}, "a bearer token is needed"),
    ],
)
async def test_refuses_a_missing_or_wrong_token(hub, path: str, headers: dict, said: str) -> None:
    resp = await hub.get(path, headers=headers)
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    text = await resp.text()
    assert text.startswith(said)  # a wrong token is not told a token is needed
    assert TOKEN not in text


async def test_accepts_the_token_in_the_query(hub) -> None:
    async with hub.get(f"/events?token={TOKEN}") as resp:
        assert resp.status == 200
        await callbacks(hub, "0")
        [(offset, doc)] = await Reader(resp).events(1)
    assert (offset, doc["subject"]) == ("0", "1")


async def test_bad_requests(hub) -> None:
    bad_pattern = await hub.get("/events?pattern=a..b", headers=BEARER)
    bad_id = await hub.get("/events", headers={**BEARER, "Last-Event-ID": "x"})
    assert bad_pattern.status == bad_id.status == 400


async def test_no_stream_is_503(aiohttp_client, rabbit, tmp_path: Path) -> None:
    exchange = f"nostream-{uuid.uuid4().hex[:8]}"
    client = await start_hub(aiohttp_client, rabbit, tmp_path, exchange, stream=False)
    resp = await client.get("/events", headers=BEARER)
    assert resp.status == 503


async def test_shutdown_ends_open_streams(hub) -> None:
    resp = await hub.get("/events", headers=BEARER)
    assert await resp.content.readline() == b"retry: 2000\n"
    async with asyncio.timeout(30):  # without the shutdown hook, the server waits a minute
        await hub.server.close()
        assert await resp.content.read() in (b"\n", b"")
    resp.release()


def test_the_app_serves_events_when_a_token_is_set(rabbit, tmp_path: Path) -> None:
    with_token = create_app(
        make_settings(tmp_path / "a", rabbitmq_url=rabbit.url, events_token=TOKEN)
    )
    without = create_app(make_settings(tmp_path / "b", rabbitmq_url=rabbit.url))
    paths = {r.resource.canonical for r in with_token.router.routes() if r.resource}
    assert "/events" in paths
    assert "/events" not in {r.resource.canonical for r in without.router.routes() if r.resource}
