"""schemathesis fuzzes every operation of the served OpenAPI document (``/api/v1/openapi.json``)
against the hub on a loopback test server: no 5xx, every answer as the document says (status
documented, body of the documented schema, content type).

The document is read from the running app, so an operation added to the API is fuzzed without
a line here. The hub is aiohttp (neither ASGI nor WSGI): schemathesis calls it over HTTP with
``requests``, from a thread, while the test's event loop serves it. Bounded: a few examples per
operation (``EXAMPLES``), no example database, and derandomized: the same examples at each run,
so that the suite does not pass or fail by chance (raise ``EXAMPLES`` and drop ``derandomize``
to explore further).
"""

from __future__ import annotations

import asyncio
from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings

from hub.app import create_app
from parsers import REGISTRY
from tests.support import DLR, OPERATOR, dlr_query, get_raw, make_settings

EXAMPLES = 25
"""Examples per operation: enough to hit every parameter's bounds and kinds, within seconds."""
BAD = f"{DLR}?statut=0&tel=0612345678&date=never&heure=10:00:00"


def fuzz(document: dict[str, Any], base_url: str) -> list[str]:
    """Runs every operation of ``document`` against ``base_url``; the labels fuzzed."""
    schema = schemathesis.openapi.from_dict(document)
    fuzzed = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @hypothesis_settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=base_url, headers=OPERATOR, timeout=30)

        check()
        fuzzed.append(operation.label)
    return fuzzed


async def test_the_api_answers_every_operation_as_documented(
    aiohttp_client, index_backend, tmp_path
) -> None:
    # on both read models: this hub's index, and the shared one (PostgreSQL: its text, its
    # integers and its statements see what schemathesis sends too)
    client = await aiohttp_client(create_app(make_settings(tmp_path, **index_backend)))
    # something to find: events, refused requests, replayable ones
    for i in range(3):
        assert await (await get_raw(client, f"{DLR}?{dlr_query(i)}")).read() == b"validation"
        assert await (await get_raw(client, BAD)).read() == b"probleme"
    document = await (await client.get("/api/v1/openapi.json", headers=OPERATOR)).json()
    base_url = str(client.make_url("/")).rstrip("/")
    fuzzed = await asyncio.to_thread(fuzz, document, base_url)
    declared = {f"{m.upper()} {p}" for p, ops in document["paths"].items() for m in ops}
    assert set(fuzzed) == declared
    assert len(REGISTRY) and len(declared) >= 7
