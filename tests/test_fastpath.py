"""``hub.fastpath``: a callback past the router gets the answer and the counts it gets through it.

Two real servers (``hub.server.start``, loopback), one with the front ``hub serve`` installs and
one without, are sent the same bytes: callbacks that the front takes, and requests it must leave
to the app (percent-escapes, a trailing slash, a wrong method, ``HEAD``, ``Expect``...). Their
answers (but the ``Date`` header) and their metrics must be the same; a spy on the front's way to
the app shows which requests took which way, so that the comparison cannot pass by the front
never being used.
"""

from __future__ import annotations

import argparse
import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from prometheus_client import generate_latest

from hub.app import create_app
from hub.fastpath import Front, RequestHandler
from hub.handlers import RUNTIME
from hub.server import Limits, start
from tests.support import SECRET, SEED_DLR, make_settings

DMC_BODY = (
    Path(__file__).resolve().parent.parent / "parsers/samples/dmc/seed-sms-sent.body"
).read_bytes()

DLR = f"/callbacks/isendpro/{SECRET}/delivery"
ESCAPED_SECRET = SECRET.replace("-", "%2D")


def _get(target: str | bytes, headers: bytes = b"") -> bytes:
    if isinstance(target, str):
        target = target.encode()
    return b"GET " + target + b" HTTP/1.1\r\nHost: hub\r\nConnection: close\r\n" + headers + b"\r\n"


def _post(target: str, body: bytes, headers: bytes = b"") -> bytes:
    return (
        f"POST {target} HTTP/1.1\r\nHost: hub\r\nConnection: close\r\n".encode()
        + b"Content-Type: text/xml; charset=UTF-8\r\n"
        + f"Content-Length: {len(body)}\r\n".encode()
        + headers
        + b"\r\n"
        + body
    )


# (name, request bytes, does the front take it)
CASES = [
    ("isendpro report", _get(DLR.encode() + b"?" + SEED_DLR.strip()), True),
    ("raw latin-9 bytes in the query", _get(DLR.encode() + b"?tel=06&msg_sms=R\xe9ponse"), True),
    ("refused query", _get(DLR + "?nothing=here"), True),
    ("dmc report", _post(f"/callbacks/dmc/{SECRET}/cra", DMC_BODY), True),
    (
        "wrong secret",
        _get(f"/callbacks/isendpro/not-the-secret/delivery?{SEED_DLR.decode()}"),
        True,
    ),
    ("dot segment as the secret", _get("/callbacks/isendpro/../delivery"), False),
    ("percent-escaped secret", _get(f"/callbacks/isendpro/{ESCAPED_SECRET}/delivery?id=1"), False),
    ("trailing slash", _get(DLR + "/?id=1"), False),
    ("empty secret", _get("/callbacks/isendpro//delivery"), False),
    ("unknown callback", _get(f"/callbacks/isendpro/{SECRET}/nothing"), False),
    ("unknown provider", _get(f"/callbacks/nobody/{SECRET}/delivery"), False),
    ("wrong method", _post(DLR, b"x"), False),
    (
        "probe",
        b"HEAD " + DLR.encode() + b" HTTP/1.1\r\nHost: hub\r\nConnection: close\r\n\r\n",
        False,
    ),
    (
        "expect 100-continue",
        _post(f"/callbacks/dmc/{SECRET}/cra", DMC_BODY, b"Expect: 100-continue\r\n"),
        False,
    ),
    ("health", _get("/health/live"), False),
]


class Spy:
    """The front's way to the app, counted."""

    def __init__(self) -> None:
        self.calls = 0

    def wrap(self, fallback: RequestHandler) -> RequestHandler:
        async def counted(request: web.BaseRequest) -> web.StreamResponse:
            self.calls += 1
            return await fallback(request)

        return counted


async def _exchange(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()


def _without_date(answer: bytes) -> bytes:
    return re.sub(rb"\r\nDate: [^\r]*", b"", answer)


def _counts(app: web.Application) -> list[str]:
    text = generate_latest(app[RUNTIME].metrics.registry).decode()
    wanted = (
        "hub_http_requests_total",
        "hub_callbacks_total",
        "hub_http_request_duration_seconds_count",
    )
    return sorted(
        line for line in text.splitlines() if line.startswith(wanted) and not line.endswith(" 0.0")
    )


@pytest.fixture
async def servers(
    tmp_path: Path,
) -> AsyncIterator[tuple[Spy, tuple[int, web.Application], tuple[int, web.Application]]]:
    """The spy, then (port, app) of a server with the front, then of one without."""
    spy = Spy()
    with_front = create_app(make_settings(tmp_path / "front"))
    routed = create_app(make_settings(tmp_path / "routed"))
    front_runner, front_port = await start(
        with_front, "127.0.0.1", 0, Limits(), front=lambda f: Front(with_front, spy.wrap(f))
    )
    routed_runner, routed_port = await start(routed, "127.0.0.1", 0, Limits())
    try:
        yield spy, (front_port, with_front), (routed_port, routed)
    finally:
        await front_runner.cleanup()
        await routed_runner.cleanup()


async def test_the_front_answers_and_counts_as_the_router_does(servers) -> None:
    spy, (front_port, front_app), (routed_port, routed_app) = servers
    for name, data, taken in CASES:
        before = spy.calls
        fast = await _exchange(front_port, data)
        routed = await _exchange(routed_port, data)
        assert _without_date(fast) == _without_date(routed), name
        assert spy.calls == before + (0 if taken else 1), f"{name}: front taken={not taken}"
    assert _counts(front_app) == _counts(routed_app)
    assert any('outcome="accepted"' in line for line in _counts(front_app))


def test_hub_serve_installs_the_front(monkeypatch, tmp_path: Path) -> None:
    """``hub serve`` hands ``hub.server.run`` the front (the comparison above is of a server
    made by the test: this is what the real command runs)."""
    from hub import server
    from hub.cli import serve

    seen: dict[str, object] = {}

    def run(app: web.Application, *args: object, **kwargs: object) -> None:
        seen.update(kwargs, app=app)

    monkeypatch.setenv("HUB_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(serve, "_install_uvloop", lambda: None)
    monkeypatch.setattr(serve, "_tune_gc", lambda: None)
    monkeypatch.setattr(server, "run", run)
    assert serve.serve_command(argparse.Namespace()) == 0

    async def fallback(request: web.BaseRequest) -> web.StreamResponse:
        return web.Response()

    make = seen["front"]
    assert callable(make)
    front = make(fallback)
    assert isinstance(front, Front) and front._app is seen["app"]
