"""A fake of eCall's message buffer (seed 003, 3.6): ``GET /Api/Cache/GetNextMessage`` and
``GET /Api/Cache/DeleteMessage`` on loopback, answering as the document shows.

State: the buffer (:attr:`FakeEcall.buffer`, oldest first), which only ``DeleteMessage`` empties;
the calls received (:attr:`FakeEcall.calls`); a switch (:attr:`FakeEcall.fail`) to answer as eCall
does when it refuses: unknown credentials (HTTP 401, 4.1), a technical problem (ResultCode 11903),
a server error (HTTP 500), or no answer at all until the client gives up (:attr:`Fail.HANG`);
and a switch (:attr:`FakeEcall.hold_deletes`) that leaves every ``DeleteMessage`` unanswered and
undone (a client that dies before its deletion completes): recorded, never carried out. Served
as every fake is (``tests.fakes.base``: ``Running`` from a thread of its own, for a hub in a
process of its own).

Query names are read case-insensitively (3); credentials are ``UserName``/``Password``; the
buffer answers HTTP 200 with its XML whatever the result (4.1), 11204 when it is empty.

    async with FakeEcall() as fake:
        fake.queue(BufferedSms("0041766012999", "0041791234567", "Oui", "11.12.2015 10:37:00"))
        ... GET f"{fake.url}/Api/Cache/GetNextMessage?Username={USERNAME}&Password={PASSWORD}"
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from enum import Enum
from xml.sax.saxutils import escape

from aiohttp import web

from tests.fakes.base import Fake

USERNAME, PASSWORD = "hub-user", "ecall-pass-0123456789"


class Fail(Enum):
    CREDENTIALS = "credentials"
    TECHNICAL_PROBLEM = "technical_problem"
    SERVER_ERROR = "server_error"
    HANG = "hang"


@dataclass(frozen=True)
class BufferedSms:
    address_to: str
    address_from: str
    message: str
    timestamp: str
    """``dd.mm.yyyy hh:mm:ss``, as eCall writes it."""
    message_id: str = ""
    """Given by the fake when queued if empty."""


@dataclass(frozen=True)
class Received:
    at: float
    """``time.monotonic()`` when the request came."""
    method: str
    path: str
    query: dict[str, str]
    """By lower-case name."""


@dataclass
class FakeEcall(Fake[Received]):
    username: str = USERNAME
    password: str = PASSWORD
    buffer: list[BufferedSms] = field(default_factory=list)
    fail: Fail | None = None
    hold_deletes: bool = False
    """``DeleteMessage`` requests are recorded, then left without an answer until the fake
    stops, and delete nothing (the buffer keeps the message)."""
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def queue(self, sms: BufferedSms) -> BufferedSms:
        """Put ``sms`` in the buffer (newest last); it gets an id if it has none."""
        if not sms.message_id:
            sms = BufferedSms(**{**sms.__dict__, "message_id": f"msg{next(self._ids):04d}"})
        self.buffer.append(sms)
        return sms

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/Api/Cache/GetNextMessage", self._get_next_message)
        app.router.add_get("/Api/Cache/DeleteMessage", self._delete_message)
        return app

    # -- handlers ---------------------------------------------------------------------------

    async def _refusal(self, request: web.Request) -> tuple[dict[str, str], web.Response | None]:
        query = {k.lower(): v for k, v in request.query.items()}
        self.calls.append(Received(time.monotonic(), request.method, request.path, query))
        if self.fail is Fail.HANG:
            await self.hold()  # the client times out first
        if self.fail is Fail.SERVER_ERROR:
            return query, web.Response(status=500, text="InternalServerError")
        wrong = query.get("username") != self.username or query.get("password") != self.password
        if wrong or self.fail is Fail.CREDENTIALS:
            return query, web.Response(status=401, text="Unauthorized")
        if self.fail is Fail.TECHNICAL_PROBLEM:
            return query, _xml(
                f"<{_root(request)}>{_result('11903', 'TechnicalProblem')}</{_root(request)}>"
            )
        return query, None

    async def _get_next_message(self, request: web.Request) -> web.Response:
        query, refusal = await self._refusal(request)
        if refusal is not None:
            return refusal
        number = query.get("mobilenumber", "")
        found = next((s for s in self.buffer if not number or _same(s.address_to, number)), None)
        if found is None:
            return _xml(f"<IncomingSMS>{_result('11204', 'NoNewMsg')}</IncomingSMS>")
        return _xml(
            f"<IncomingSMS>{_result('0', 'OK')}"
            f"<MessageID>{escape(found.message_id)}</MessageID><SMS>"
            f"<Message>{escape(found.message)}</Message>"
            f"<AddressTo>{escape(found.address_to)}</AddressTo>"
            f"<AddressFrom>{escape(found.address_from)}</AddressFrom>"
            f"<TimeStamp>{escape(found.timestamp)}</TimeStamp></SMS></IncomingSMS>"
        )

    def deletes(self) -> list[Received]:
        """The ``DeleteMessage`` requests received, held ones included."""
        return [c for c in self.calls if c.path.endswith("DeleteMessage")]

    async def _delete_message(self, request: web.Request) -> web.Response:
        query, refusal = await self._refusal(request)
        if refusal is not None:
            return refusal
        if self.hold_deletes:
            await self.hold()
            return web.Response(status=503, text="held")  # deleted nothing
        message_id = query.get("messageid", "")
        if not message_id:
            return _xml(f"<DeleteMsg>{_result('11500', 'IDMissing')}</DeleteMsg>")
        kept = [s for s in self.buffer if s.message_id != message_id]
        if len(kept) == len(self.buffer):
            return _xml(f"<DeleteMsg>{_result('11501', 'IDInvalid')}</DeleteMsg>")
        self.buffer[:] = kept
        return _xml(f"<DeleteMsg>{_result('0', 'OK')}</DeleteMsg>")


def _root(request: web.Request) -> str:
    return "IncomingSMS" if request.path.endswith("GetNextMessage") else "DeleteMsg"


def _result(code: str, text: str) -> str:
    return f"<Result><ResultCode>{code}</ResultCode><ResultText>{text}</ResultText></Result>"


def _xml(document: str) -> web.Response:
    body = f'<?xml version="1.0" encoding="utf-8"?>\n{document}\n'.encode()
    return web.Response(body=body, content_type="text/xml", charset="utf-8")


def _same(number: str, other: str) -> bool:
    """The same rented number, international (``0041…``, ``+41…``) or national (``07…``)."""

    def national(value: str) -> str:
        digits = value.strip().removeprefix("+").removeprefix("00").removeprefix("41")
        return digits.removeprefix("0")

    return national(number) == national(other)
