"""Every provider's callbacks through the HTTP layer to a real broker: the expected routing keys."""

from __future__ import annotations

import uuid

import aio_pika
import pytest

from core.models import Event
from hub.app import create_app
from tests.golden import Case, all_cases
from tests.support import SECRET, eventually, make_settings, raw_url

pytestmark = pytest.mark.broker


def one_case_per_callback() -> list[Case]:
    """The first golden case with events of each (provider, callback) style."""
    chosen: dict[tuple[str, str], Case] = {}
    for case in all_cases():
        if case.spec.get("events"):
            chosen.setdefault((case.provider.value, case.spec["callback"]), case)
    return list(chosen.values())


async def send(client, case: Case):
    path = f"/callbacks/{case.provider.value}/{SECRET}/{case.spec['callback']}"
    headers = {"Content-Type": case.spec["content_type"]} if case.spec.get("content_type") else {}
    method = case.spec.get("method", "GET" if case.input_kind == "query" else "POST")
    if case.input_kind == "query":
        url = raw_url(client, f"{path}?{case.input.decode('latin-1')}")
        return await client.session.request(method, url, headers=headers)
    return await client.session.request(
        method, raw_url(client, path), data=case.input, headers=headers
    )


async def test_one_callback_of_each_style_gives_the_expected_routing_keys(
    aiohttp_client, rabbit, tmp_path
):
    exchange = f"styles-{uuid.uuid4().hex[:8]}"
    client = await aiohttp_client(
        create_app(make_settings(tmp_path, rabbitmq_url=rabbit.url, exchange=exchange))
    )
    connection = await aio_pika.connect(rabbit.url)
    async with connection:
        channel = await connection.channel()

        # the hub declares the exchange once connected; bind only after it exists
        async def declared() -> bool:
            try:
                probe = await connection.channel()
                await probe.get_exchange(exchange)
            except aio_pika.exceptions.ChannelClosed:
                return False
            return True

        await eventually(declared)
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(exchange, "#")

        cases = one_case_per_callback()
        assert {c.provider.value for c in cases} == {
            "ecampaign",
            "dmc",
            "isendpro",
            "ecall",
            "smsmode",
        }
        expected: list[tuple[str, str]] = []
        for case in cases:
            resp = await send(client, case)
            assert resp.status == case.spec["reply"]["status"], case.id
            assert await resp.text() == case.spec["reply"]["body"], case.id
            expected += [(e["id"], _key(e)) for e in case.spec["events"]]

        got: list[tuple[str, str]] = []

        async def all_there() -> bool:
            while (message := await queue.get(no_ack=True, fail=False)) is not None:
                event = Event.from_json(message.body)
                assert message.message_id == event.id
                got.append((event.id, message.routing_key))
            return len(got) >= len(expected)

        await eventually(all_there)
    # event ids depend only on what the provider sent: they are the golden files' ids
    assert sorted(got) == sorted(expected)


def _key(doc: dict) -> str:
    d = doc["data"]
    return f"{d['provider']}.{d['channel']}.{d['kind']}.{d['state']}"
