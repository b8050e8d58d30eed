"""The operator's side (``/api/v1/``, ``/console/``) is behind one token; the callbacks are not."""

from __future__ import annotations

import stat

from hub import operator
from hub.api import build
from hub.app import create_app
from tests.support import CONSOLE_TOKEN, DLR, OPERATOR, dlr_query, get_raw, make_settings


async def test_the_api_wants_the_token(aiohttp_client, tmp_path) -> None:
    client = await aiohttp_client(create_app(make_settings(tmp_path)))
    refused = [
        await client.get("/api/v1/status"),
        await client.get("/api/v1/status", headers={"Authorization": "Bearer wrong"}),
        await client.get("/api/v1/status", headers={"Authorization": f"Basic {CONSOLE_TOKEN}"}),
        await client.get("/api/v1/openapi.json"),
    ]
    for answer in refused:
        assert answer.status == 401
        assert (await answer.json())["error"] == "unauthorized"
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    answer = await client.get("/api/v1/status", headers=OPERATOR)
    assert answer.status == 200
    assert (await answer.json())["forwarding"] is False
    # the callbacks and the health checks want no token
    assert await (await get_raw(client, f"{DLR}?{dlr_query(1)}")).read() == b"validation"
    assert (await client.get("/health/live")).status == 200


async def test_with_no_token_configured_one_is_made_once_and_kept_private(
    aiohttp_client, tmp_path
) -> None:
    settings = make_settings(tmp_path, console_token=None)
    assert operator.stored(tmp_path) is None
    client = await aiohttp_client(create_app(settings))
    token = operator.stored(tmp_path)
    assert token is not None and len(token) >= 20
    assert stat.S_IMODE((tmp_path / operator.TOKEN_FILE).stat().st_mode) == 0o600
    answer = await client.get("/api/v1/status", headers={"Authorization": f"Bearer {token}"})
    assert answer.status == 200
    await client.close()
    create_app(settings)  # a second start keeps it
    assert operator.stored(tmp_path) == token


async def test_the_openapi_document_lists_exactly_the_routes(aiohttp_client, tmp_path) -> None:
    settings = make_settings(tmp_path)
    client = await aiohttp_client(create_app(settings))
    document = await (await client.get("/api/v1/openapi.json", headers=OPERATOR)).json()
    assert document["openapi"].startswith("3.1")
    documented = {
        (method.upper(), path) for path, ops in document["paths"].items() for method in ops
    }
    served = {
        (r.method, r.resource.canonical)
        for r in client.app.router.routes()
        if r.resource is not None
        and r.resource.canonical.startswith("/api/v1/")
        and r.method != "HEAD"
        and r.resource.canonical != "/api/v1/openapi.json"
    }
    assert documented == served
    assert documented == {(op.method, "/api/v1" + op.path) for op in build(settings).operations}
    assert "Status" in document["components"]["schemas"]
