"""Hostile clients and odd bytes (issue 13): bad input is refused once, logs leak nothing, a
client that goes away is not a 500, and the bytes providers really send are taken."""

from __future__ import annotations

import asyncio
import io
import itertools
import logging
import socket
import sqlite3
import urllib.request
from contextlib import closing
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.models import Channel, Event, EventData, Kind, Provider, State
from hub import quarantine
from hub.app import create_app
from hub.logs import MaskingFilter
from parsers import REGISTRY
from sinks import journal as store
from tests.harness.hubproc import HubProcess
from tests.support import (
    DLR,
    SECRET,
    dlr_query,
    eventually,
    get_raw,
    hub_env,
    make_settings,
    metric,
    wait_until,
)

DMC = f"/callbacks/dmc/{SECRET}/cra"
ROUTE = "/callbacks/dmc/{secret}/cra"
PHONE = "0612345678"
TEXT = "Rendez-vous confirmé mardi"
OVERFLOW = (
    b'<status_report username="1234"><call to="+33401020304" status="ENDED" call_id="7"'
    b' date="2014-07-11 09:55:55"><status date="2014-07-11 09:55:55" type="ENDED"'
    b' time="18446744073709551616"/></call></status_report>'
)


async def metrics_of(client) -> str:
    return await (await client.get("/metrics")).text()


def quarantined(settings) -> list[store.Quarantined]:
    return store.quarantined(settings.data_dir / store.JOURNAL_FILE, include_replayed=True)


# -- finding 3: whatever the parser's bug, bad input is the provider's negative answer, once ------


async def test_a_dmc_number_past_64_bits_is_an_event_not_a_retry(aiohttp_client, tmp_path) -> None:
    settings = make_settings(tmp_path)
    client = await aiohttp_client(create_app(settings))
    resp = await client.post(DMC, data=OVERFLOW, headers={"Content-Type": "text/xml"})
    assert (resp.status, await resp.read()) == (200, b"OK")
    [stored] = store.select(settings.data_dir / store.JOURNAL_FILE)
    assert stored.event().data.details["duration"] == "18446744073709551616"
    assert quarantined(settings) == []


def _unwritable_event(request) -> list[Event]:
    """What a parser with a bug could make: an event whose JSON the journal cannot write."""
    data = EventData(
        provider=Provider.DMC,
        channel=Channel.VOICE,
        kind=Kind.DELIVERY,
        state=State.DELIVERED,
        final=True,
        details={"duration": 1 << 70},
        raw={},
        received_at=request.received_at,
    )
    return [Event.of(data)]


def _crashing_parser(request) -> list[Event]:
    raise IndexError(f"no field after tel={PHONE} msg_sms={TEXT}")


@pytest.mark.parametrize(
    ("provider", "path", "parser", "answer"),
    [
        (Provider.ISENDPRO, f"{DLR}?{dlr_query(1)}", _crashing_parser, (200, b"probleme")),
        (Provider.DMC, DMC, _crashing_parser, (400, b"rejected: parser_error")),
        (Provider.DMC, DMC, _unwritable_event, (400, b"rejected: parser_error")),
    ],
    ids=["isendpro-parser-raises", "dmc-parser-raises", "dmc-event-unwritable"],
)
async def test_a_parser_bug_is_the_negative_answer_and_one_quarantine_entry(
    aiohttp_client, tmp_path, monkeypatch, caplog, provider, path, parser, answer
) -> None:
    """Not the retry answer (503 for DMC): that brings the same input back for ever, one more
    quarantine row each time."""
    monkeypatch.setattr(REGISTRY[provider], "parse", parser)
    settings = make_settings(tmp_path)
    client = await aiohttp_client(create_app(settings))
    with caplog.at_level(logging.INFO):
        if provider is Provider.DMC:
            resp = await client.post(DMC, data=OVERFLOW, headers={"Content-Type": "text/xml"})
        else:
            resp = await get_raw(client, path)
        assert (resp.status, await resp.read()) == answer
    [kept] = quarantined(settings)
    assert kept.entry.reason == "parser_error"
    text = await metrics_of(client)
    assert (
        metric(
            text,
            "hub_callbacks_total",
            provider=provider.value,
            outcome="rejected",
            reason="parser_error",
        )
        == 1
    )
    assert metric(text, "hub_callbacks_total", outcome="unavailable") is None
    ours = [r for r in caplog.records if r.name.startswith("hub")]  # the test server logs access
    assert any(r.levelno >= logging.ERROR for r in ours), "a parser's bug is logged at ERROR"
    logged = "\n".join(r.getMessage() + str(r.exc_info) for r in ours)
    assert PHONE not in logged and TEXT not in logged and SECRET not in logged


async def test_quarantine_replay_goes_on_past_entries_it_cannot_parse(
    aiohttp_client, tmp_path, monkeypatch, capsys
) -> None:
    """Three entries: one the parser still crashes on, one whose row is unreadable, one that
    replays; replay says which is which, replays the good one, and does not crash."""
    settings = make_settings(tmp_path)
    real = REGISTRY[Provider.ISENDPRO].parse
    monkeypatch.setattr(REGISTRY[Provider.ISENDPRO], "parse", _crashing_parser)
    client = await aiohttp_client(create_app(settings))
    for n in (1, 2, 3):
        assert await (await get_raw(client, f"{DLR}?{dlr_query(n)}")).read() == b"probleme"
    await client.close()
    first, second, third = (q.seq for q in quarantined(settings))
    with closing(sqlite3.connect(settings.data_dir / store.JOURNAL_FILE)) as conn, conn:
        conn.execute("UPDATE quarantine SET provider = 'gone' WHERE seq = ?", (second,))

    def still_crashes_on_the_first(request):
        return _crashing_parser(request) if b"id=1&" in request.query else real(request)

    monkeypatch.setattr(REGISTRY[Provider.ISENDPRO], "parse", still_crashes_on_the_first)
    outcomes = {o.number: o for o in await quarantine.replay(settings)}
    assert outcomes[first].refused == "parser_error"
    assert outcomes[second].refused == "unreadable_entry"
    assert (outcomes[third].events, outcomes[third].refused) == (1, None)
    [event] = [s.event() for s in store.select(settings.data_dir / store.JOURNAL_FILE)]
    assert event.data.message_id == "3"
    assert event.data.received_at <= datetime.now(UTC)


# -- finding 5: a client that goes away mid-body is an outcome of its own, not a 500 -------------


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_a_client_gone_mid_body_is_counted_as_disconnected_not_500(
    aiohttp_client, tmp_path, caplog, framing
) -> None:
    settings = make_settings(tmp_path)
    client = await aiohttp_client(create_app(settings))
    assert (
        metric(
            await metrics_of(client),
            "hub_callbacks_total",
            provider="dmc",
            endpoint="cra",
            outcome="disconnected",
        )
        == 0
    )  # at zero before the first one
    length = (
        b"Transfer-Encoding: chunked\r\n\r\n100\r\n<status"
        if framing == "chunked"
        else b"Content-Length: 1000\r\n\r\n<status"
    )
    with caplog.at_level(logging.DEBUG):
        _reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
        writer.write(f"POST {DMC} HTTP/1.1\r\nHost: hub\r\n".encode() + length)
        await writer.drain()

        async def counted() -> bool:
            text = await metrics_of(client)
            return bool(metric(text, "hub_http_requests_total", route=ROUTE, status="499"))

        async def body_awaited() -> bool:  # the handler is reading the body
            return bool(client.server.handler.connections) and any(
                c._current_request is not None for c in client.server.handler.connections
            )

        await eventually(body_awaited, timeout=10)
        writer.close()
        await eventually(counted, timeout=10)
    text = await metrics_of(client)
    assert metric(text, "hub_http_requests_total", route=ROUTE, status="500") is None
    assert (
        metric(text, "hub_callbacks_total", provider="dmc", endpoint="cra", outcome="disconnected")
        == 1
    )
    assert [r for r in caplog.records if r.levelno > logging.INFO] == []
    assert quarantined(settings) == []


# -- finding 1: no secret, number or text in any log line, whatever logs it ----------------------

WORDS = ("Confidentiel", "Bisous", "Rendez")
"""Words of the message texts the cases below carry: none may reach the log."""


def _line(target: bytes, version: bytes = b"HTTP/1.1", headers: bytes = b"") -> bytes:
    head = b"GET " + target + b" " + version + b"\r\nHost: hub\r\nConnection: close\r\n"
    return head + headers + b"\r\n"


def _reply(text: bytes) -> bytes:
    return f"/callbacks/isendpro/{SECRET}/reply?tel={PHONE}&id_retour=5&msg_sms=".encode() + text


HOSTILE = {
    "raw-8-bit-byte": _line(_reply(b"Confidentiel r\xe9ponse")),
    "nul": _line(_reply(b"Confidentiel\x00Bisous")),
    "space": _line(_reply(b"Confidentiel Bisous")),
    "url-over-8-KiB": _line(_reply(b"Confidentiel+" + b"x" * 9000)),
    "path-over-8-KiB": _line(f"/callbacks/isendpro/{SECRET}/".encode() + b"Bisous" * 1500),
    "bad-version": _line(_reply(b"Rendez-vous+Bisous"), version=b"HTTP/9.Z"),
    "bad-header": _line(_reply(b"Rendez-vous"), headers=f"X-Note: {PHONE}\x01\r\n".encode()),
    "tls-on-http": b"\x16\x03\x01\x02\x00" + _reply(b"Bisous"),
}


def _send(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(data)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
        return answer


def test_a_real_hub_logs_no_secret_number_or_text_whatever_it_is_sent(tmp_path) -> None:
    """Malformed request lines (aiohttp logs them whole in its exception), a client gone
    mid-body, against a real ``hub serve`` logging at DEBUG: the captured log holds errors from
    aiohttp, and no secret, phone number or message text."""
    env = {**hub_env(), "HUB_LOG_LEVEL": "DEBUG"}
    with HubProcess(tmp_path / "data", env) as hub:
        answers = {name: _send(hub.port, data) for name, data in HOSTILE.items()}
        with socket.create_connection(("127.0.0.1", hub.port), timeout=10) as conn:
            conn.sendall(
                f"POST {DMC} HTTP/1.1\r\nHost: hub\r\nContent-Length: 900\r\n\r\n".encode()
                + b'<status_report username="Bisous"><sms to="'
                + PHONE.encode()
            )

        def gone_counted() -> bool:
            with urllib.request.urlopen(f"{hub.url}/metrics", timeout=5) as resp:
                text = resp.read().decode()
            return bool(metric(text, "hub_callbacks_total", provider="dmc", outcome="disconnected"))

        wait_until(gone_counted, 10, failure=hub.log_tail)
    log = hub.log_file.read_text(errors="replace")
    assert "aiohttp.server" in log, "the malformed requests were logged by aiohttp"
    assert all(a.startswith(b"HTTP/1.") for a in answers.values()), answers
    assert SECRET not in log
    assert PHONE[1:-2] not in log
    for word in WORDS:
        assert word not in log, word


def test_the_masking_filter_masks_arguments_exception_text_and_stack() -> None:
    """Whatever the logger (ours, aiohttp's, aio-pika's) and the level: the record whole."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(MaskingFilter())
    logger = logging.getLogger("aiohttp.server.test-masking")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    url = f"/callbacks/isendpro/{SECRET}/reply?tel={PHONE}&msg_sms=Confidentiel Bisous"
    try:
        try:
            raise ValueError(f"bad line {url.encode()!r}")
        except ValueError:
            logger.debug("Error handling %s", url, exc_info=True, stack_info=True)
            logger.error("from %s", "amqp://hub:Bisous-password@127.0.0.1/", exc_info=True)
    finally:
        logger.removeHandler(handler)
    logged = stream.getvalue()
    assert "ValueError" in logged and "Stack (most recent call last)" in logged
    assert "/callbacks/isendpro/***/reply?***" in logged
    assert SECRET not in logged and PHONE not in logged
    assert "Bisous" not in logged and "Confidentiel" not in logged


# -- finding 8: raw 8-bit bytes, NUL or a space in a query are taken as providers send them -------


async def _exchange(port: int, *writes: bytes) -> bytes:
    """Writes each piece in turn (separate reads on the server's side), then reads to the end."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for piece in writes:
            writer.write(piece)
            await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()


def _get(target: bytes, *, close: bool = True) -> bytes:
    connection = b"Connection: close\r\n" if close else b""
    return b"GET " + target + b" HTTP/1.1\r\nHost: hub\r\n" + connection + b"\r\n"


ISENDPRO_DLR = f"/callbacks/isendpro/{SECRET}/delivery?".encode()
ISENDPRO_REPLY = f"/callbacks/isendpro/{SECRET}/reply?".encode()
LATIN9_REPLY = b"tel=0612345678&id_retour=5&msg_sms=R\xe9ponse \xe0 4\xa4&tracker=t"
SPACED_DLR = (
    b"tel=0612345678&libelle=le message est bien arriv\xe9&statut=0&code_erreur=000"
    b"&date=2012-08-12&heure=11:15:45&id=35986&operateur=SFR&tracker=a\x00b\tc"
)


@pytest.mark.parametrize(
    ("target", "field", "value"),
    [
        (ISENDPRO_REPLY + LATIN9_REPLY, "text", "Réponse à 4€"),
        (ISENDPRO_DLR + SPACED_DLR, "label", "le message est bien arrivé"),
        (ISENDPRO_DLR + SPACED_DLR, "reference", "a\x00b\tc"),
    ],
    ids=["latin-9-reply", "spaces-and-8-bit-in-a-report", "nul-and-tab"],
)
async def test_raw_bytes_in_an_isendpro_query_are_read_not_refused(
    aiohttp_client, tmp_path, target, field, value
) -> None:
    """ISO-8859-15 as iSendPro says its URLs are, not percent-encoded: ``validation``, and the
    event reads the text (before: aiohttp's 400, the hub never saw the request)."""
    settings = make_settings(tmp_path)
    client = await aiohttp_client(create_app(settings))
    answer = await _exchange(client.port, _get(target))
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"\r\n\r\nvalidation"), answer
    [stored] = store.select(settings.data_dir / store.JOURNAL_FILE)
    data = stored.event().data
    assert (data.details.get("label") if field == "label" else getattr(data, field)) == value


async def test_a_refused_query_with_raw_bytes_is_quarantined_byte_for_byte(
    aiohttp_client, tmp_path
) -> None:
    settings = make_settings(tmp_path)
    client = await aiohttp_client(create_app(settings))
    query = b"quoi=caf\xe9 cr\xe8me\x00"
    answer = await _exchange(client.port, _get(ISENDPRO_DLR + query))
    assert answer.endswith(b"\r\n\r\nprobleme"), answer
    [kept] = quarantined(settings)
    assert kept.entry.query == query


async def test_raw_bytes_on_a_kept_alive_connection_and_in_a_wrong_secret(
    aiohttp_client, tmp_path
) -> None:
    """The second request of a connection is mended too; a mended path is routed as sent (a
    wrong secret: 404, not 400)."""
    settings = make_settings(tmp_path)
    client = await aiohttp_client(create_app(settings))
    answer = await _exchange(
        client.port,
        _get(ISENDPRO_REPLY + b"tel=0612345678&msg_sms=un", close=False),
        _get(ISENDPRO_REPLY + b"tel=0612345678&msg_sms=deux \xe9", close=False),
        _get(b"/callbacks/isendpro/x\xe9y/reply?tel=0612345678"),
    )
    assert answer.count(b"\r\n\r\nvalidation") == 2, answer
    assert b"HTTP/1.1 404 " in answer and b" 400 " not in answer, answer
    texts = [s.event().data.text for s in store.select(settings.data_dir / store.JOURNAL_FILE)]
    assert texts == ["un", "deux é"]


async def test_a_body_is_never_mended(aiohttp_client, tmp_path) -> None:
    """A body that arrives in several reads, one of them starting like a request line with raw
    bytes: the body reaches the parser (and the quarantine) as sent."""
    settings = make_settings(tmp_path)
    client = await aiohttp_client(create_app(settings))
    body = b"<status_report>\n" + b"GET /callbacks/x\xe9 HTTP/1.1\r\n" + b"not xml"
    head = f"POST {DMC} HTTP/1.1\r\nHost: hub\r\nConnection: close\r\n".encode()
    head += f"Content-Length: {len(body)}\r\n\r\n".encode()
    answer = await _exchange(client.port, head + body[:16], body[16:])
    assert b"HTTP/1.1 400 " in answer and answer.endswith(b"rejected: invalid_xml"), answer
    [kept] = quarantined(settings)
    assert kept.entry.body == body


def test_the_mended_parser_is_aiohttps_c_parser_and_mends_only_what_llhttp_refuses() -> None:
    from aiohttp import _http_parser, web_protocol  # the C parser, built with aiohttp
    from aiohttp.helpers import NO_EXTENSIONS

    from hub.requestline import MendingRequestParser, install, mend

    install()
    assert web_protocol.HttpRequestParser is MendingRequestParser  # type: ignore[attr-defined]
    if not NO_EXTENSIONS:  # the C parser's speed is kept
        assert issubclass(MendingRequestParser, _http_parser.HttpRequestParser)
    assert mend(b"GET /a?b=c%a%d&e=f+g HTTP/1.1\r") is None
    assert mend(b"GET /a?b=c d\xe9\x00 HTTP/1.1\r") == (
        b"GET /a?b=c%20d%E9%00 HTTP/1.1\r",
        b"/a?b=c d\xe9\x00",
    )
    assert mend(b"\x16\x03\x01 /a\xe9 HTTP/1.1") is None  # not a request line: llhttp's to refuse
    assert mend(b"GET /a\xe9 HTTP/2.0") is None


@pytest.mark.parametrize(
    ("query", "field", "value"),
    [
        (
            b"Function=Answer&AddressTo=0041766012999&AddressFrom=0041791234567"
            b"&TimeStamp=11.12.2015 10:37:00&Message=Caf\xe9 \x80 5",
            "text",
            "Café € 5",
        ),
        (
            b"Function=Notification&ResultCode=0&ResultText=Message d\xc3\xa9livr\xc3\xa9"
            b"&TimeStamp=17.07.2014 12:55:15&Number=0041787557539",
            "result_text",
            "Message délivré",
        ),
    ],
    ids=["answer-windows-1252", "notification-utf-8"],
)
async def test_raw_bytes_in_an_ecall_query_are_read_not_refused(
    aiohttp_client, tmp_path, query, field, value
) -> None:
    """eCall: characters 'may' be percent-encoded (so may not be), UTF-8, the Answer's text
    Windows-1252: its non-empty 200, and the event reads the text."""
    settings = make_settings(tmp_path)
    client = await aiohttp_client(create_app(settings))
    answer = await _exchange(
        client.port, _get(f"/callbacks/ecall/{SECRET}/answer?".encode() + query)
    )
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"\r\n\r\nOK"), answer
    [stored] = store.select(settings.data_dir / store.JOURNAL_FILE)
    data = stored.event().data
    assert (data.text if field == "text" else data.details[field]) == value


class _Protocol:
    """What aiohttp's parser needs of its protocol to parse requests fed to it."""

    transport = None

    def pause_reading(self, **kwargs: object) -> None: ...

    def resume_reading(self, **kwargs: object) -> None: ...


_NO_EOL = st.binary(max_size=120).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
_MESSAGES = st.lists(
    st.tuples(_NO_EOL, st.none() | st.binary(max_size=80) | st.just(b"GET /x\xe9 y HTTP/1.1\r\n")),
    min_size=1,
    max_size=4,
)


@settings(max_examples=300, deadline=None)
@given(messages=_MESSAGES, cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=6))
def test_any_query_bytes_in_any_reads_give_the_requests_as_sent(messages, cuts) -> None:
    """300 examples: requests on one connection (pipelined), GET or POST with a body (which may
    look like a request line), cut into reads anywhere, whatever bytes the queries hold but CR
    and LF: each message carries its target as sent, and each body is as sent."""
    from hub.requestline import MendingRequestParser

    def request(query: bytes, body: bytes | None) -> bytes:
        line = b"/callbacks/isendpro/s/reply?" + query + b" HTTP/1.1\r\nHost: h\r\n"
        if body is None:
            return b"GET " + line + b"\r\n"
        return b"POST " + line + b"Content-Length: %d\r\n\r\n" % len(body) + body

    stream = b"".join(request(q, b) for q, b in messages)
    loop = asyncio.new_event_loop()
    try:
        parser = MendingRequestParser(_Protocol(), loop, 2**16, max_line_size=8190)
        bounds = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
        found = []
        for start, end in itertools.pairwise(bounds):
            found += parser.feed_data(stream[start:end])[0]
        bodies = [
            p.read_nowait(-1) if p.is_eof() and b is not None else None
            for (_, p), (_, b) in zip(found, messages, strict=True)
        ]
    finally:
        loop.close()
    sent = [b"/callbacks/isendpro/s/reply?" + q for q, _ in messages]
    assert [m.path.encode("utf-8", "surrogateescape") for m, _ in found] == sent
    assert all(m.url.path == "/callbacks/isendpro/s/reply" for m, _ in found)
    assert bodies == [b for _, b in messages]


_UNPRINTABLE = bytes(range(0x21)) + bytes(range(0x7F, 0x100))
_FRAMED_MESSAGE = st.tuples(
    st.sampled_from(["GET", "POST", "PUT"]),
    _NO_EOL | _NO_EOL.map(lambda b: b.translate(None, _UNPRINTABLE)),  # to mend, or in order
    st.sampled_from(["Content-Length", "content-length", "CONTENT-LENGTH", "chunked", "none"]),
    st.binary(max_size=60) | st.just(b"GET /x\xe9 y HTTP/1.1\r\n\r\n"),
)


def _framed_request(method: str, query: bytes, framing: str, body: bytes) -> bytes:
    head = method.encode() + b" /callbacks/x?" + query + b" HTTP/1.1\r\nHost: h\r\n"
    if framing == "none":
        return head + b"\r\n"
    if framing == "chunked":
        pieces = [body[i : i + 7] for i in range(0, len(body), 7)]
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces)
        return head + b"Transfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"
    return head + f"{framing}: {len(body)}\r\n\r\n".encode() + body


_MESSAGE_FIELDS = (
    "method",
    "version",
    "raw_headers",
    "should_close",
    "compression",
    "upgrade",
    "chunked",
)
"""What a parsed message says besides its path, headers and URL (compared as they are)."""


def _parsed(parser_class: type, reads: list[bytes]) -> list[tuple[object, ...]]:
    loop = asyncio.new_event_loop()
    try:
        parser = parser_class(_Protocol(), loop, 2**16, max_line_size=8190)
        found = []
        for read in reads:
            found += parser.feed_data(read)[0]
        return [
            (
                m.path,
                *(getattr(m, a) for a in _MESSAGE_FIELDS),
                [*m.headers.items()],
                str(m.url),
                p.read_nowait(-1) if p.is_eof() else b"<open>",
            )
            for m, p in found
        ]
    finally:
        loop.close()


@settings(max_examples=300, deadline=None)
@given(
    messages=st.lists(_FRAMED_MESSAGE, min_size=1, max_size=4),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=4),
    heads_alone=st.booleans(),
    one_a_read=st.booleans(),
)
def test_framed_any_way_the_mended_messages_are_llhttps_on_the_lines_mended(
    messages, cuts, heads_alone, one_a_read
) -> None:
    """300 examples: requests on one connection, Content-Length in any spelling, a chunked
    body, no body, a body that looks like a request line to mend, any query bytes but CR and LF
    up to the first chunked body (which ends the mending: a clean query after it), cut into
    reads anywhere, or one whole message a read (the common case), or heads read alone. The
    messages and bodies are what aiohttp's own parser gives for the same stream with each such
    line mended beforehand, each carrying its target as sent."""
    from aiohttp import web_protocol

    from hub.requestline import MendingRequestParser, mend

    chunked_before = itertools.accumulate((m[2] == "chunked" for m in messages), initial=False)
    messages = [
        (method, query.translate(None, _UNPRINTABLE), *rest) if after else (method, query, *rest)
        for (method, query, *rest), after in zip(messages, chunked_before, strict=False)
    ]
    requests = [_framed_request(*m) for m in messages]
    stream = b"".join(requests)
    ends = list(itertools.accumulate(len(r) for r in requests))
    starts = [0, *ends][:-1]
    heads = {s + r.find(b"\r\n\r\n") + 4 for s, r in zip(starts, requests, strict=True)}
    bounds = {0, len(stream), *(c % (len(stream) + 1) for c in cuts)}
    bounds |= (set(ends) if one_a_read else set()) | (heads if heads_alone else set())
    bounds = sorted(bounds)
    reads = [stream[start:end] for start, end in itertools.pairwise(bounds)]

    def mended(request: bytes) -> bytes:
        line, rest = request.split(b"\n", 1)
        return (mend(line) or (line, b""))[0] + b"\n" + rest

    plain = web_protocol.HttpRequestParser  # type: ignore[attr-defined]
    if plain is MendingRequestParser:  # install() ran in this process
        plain = MendingRequestParser.__mro__[1]
    expected = _parsed(plain, [b"".join(mended(r) for r in requests)])
    sent = [("/callbacks/x?" + q.decode("utf-8", "surrogateescape")) for _, q, *_ in messages]
    expected = [(path, *rest) for path, (_, *rest) in zip(sent, expected, strict=True)]
    assert _parsed(MendingRequestParser, reads) == expected


@pytest.mark.parametrize("reads", ["one", "head then body"])
def test_after_an_upgrade_with_a_body_nothing_more_is_mended(reads) -> None:
    """A request asking for an upgrade, with a ``Content-Length`` body, read whole or its head
    first: what follows it on the connection is not HTTP the hub mends; a line with a raw byte
    there gets llhttp's own refusal, as from aiohttp's parser."""
    from aiohttp import web_protocol
    from aiohttp.http_exceptions import BadHttpMessage

    from hub.requestline import MendingRequestParser

    request = (
        b"GET /x HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Content-Length: 3\r\n\r\nabc"
    )
    head = request.find(b"\r\n\r\n") + 4
    first = [request] if reads == "one" else [request[:head], request[head:]]
    plain = web_protocol.HttpRequestParser  # type: ignore[attr-defined]
    if plain is MendingRequestParser:  # install() ran in this process
        plain = MendingRequestParser.__mro__[1]
    loop = asyncio.new_event_loop()
    try:
        refusals = []
        for parser_class in (plain, MendingRequestParser):
            parser = parser_class(_Protocol(), loop, 2**16, max_line_size=8190)
            for read in first:
                parser.feed_data(read)
            with pytest.raises(BadHttpMessage) as refused:
                parser.feed_data(b"GET /y\xe9 HTTP/1.1\r\nHost: h\r\n\r\n")
            refusals.append(str(refused.value))
    finally:
        loop.close()
    assert refusals[0] == refusals[1]
