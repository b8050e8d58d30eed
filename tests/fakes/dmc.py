"""A fake of DMC's ``getResponsesSMS`` (seed 001, 2.4.7): ``POST /SupervisionWS/getResponsesSMS``,
SOAP 1.1, on loopback, answering as the document shows.

It reads the envelope's ``authenticate`` header (``servicId``, as the method's sample spells it,
or ``serviceId``, as 1.1.5.3 does; ``servicePassword``; ``spaceId``) and the body's ``stopOnly``,
``beginDate``, ``endDate`` (French local time). It answers the replies queued
(:meth:`FakeDmc.queue`) whose ``callDate`` is in the period, the STOPs only when asked, as
``getResponsesSMSResponse/return/list`` elements and a ``total``.

Refusals are SOAP faults (HTTP 500) in the shape of 1.1.5.5's sample:

- credentials that are not the service's: ``no_service_found`` (the service the request names
  does not exist);
- a second call within a minute of the previous one (2.4: the family is limited to one call per
  minute, "une exception sera remontée"). The document names no code for it: the fake's is
  ``too_many_calls``, with ``un appel par minute`` as its parameter. The minute is measured on
  :attr:`FakeDmc.clock` (``time.monotonic`` unless a test gives its own);
- a period longer than :attr:`FakeDmc.max_period` (none unless set; the document gives no
  limit): ``parametres_inconsistants``;
- :attr:`FakeDmc.fail`: a server error (HTTP 503, no envelope) or no answer at all.

Every request is kept in :attr:`FakeDmc.calls` (its time on the clock and its parameters but
the password), refused ones too: a test asserts from it that a source never called twice within
a minute. Served as every fake is (``tests.fakes.base``).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from xml.etree.ElementTree import Element
from xml.sax.saxutils import escape

from aiohttp import web

from core.errors import PayloadError
from parsers.times import PARIS
from parsers.xml import parse_xml
from tests.fakes.base import Fake

SERVICE_ID, SERVICE_PASSWORD, SPACE_ID = "123456", "654321", "69"
PATH = "/SupervisionWS/getResponsesSMS"
MINUTE = 60.0


class Fail(Enum):
    SERVER_ERROR = "server_error"
    HANG = "hang"


@dataclass(frozen=True)
class Reply:
    broadcast_id: str
    contact_id: str
    address: str
    call_date: datetime
    """Aware; written as DMC does (``2013-11-12T15:42:09+01:00``, French local time)."""
    response: str
    stop: bool = False
    """DMC counts it as a STOP (listed when ``stopOnly`` is true)."""
    space_id: str = SPACE_ID


@dataclass(frozen=True)
class Received:
    at: float
    """On the fake's clock."""
    fields: dict[str, str]
    """The header's and the body's parameters by name, but ``servicePassword``."""
    answered: str
    """``list``, or the fault's code, or ``http_503``."""


@dataclass
class FakeDmc(Fake[Received]):
    service_id: str = SERVICE_ID
    service_password: str = SERVICE_PASSWORD
    space_id: str = SPACE_ID
    replies: list[Reply] = field(default_factory=list)
    fail: Fail | None = None
    max_period: timedelta | None = None
    clock: Callable[[], float] = time.monotonic
    _last: float | None = None

    def queue(self, reply: Reply) -> Reply:
        self.replies.append(reply)
        return reply

    def shortest_interval(self) -> float | None:
        """The shortest time between two calls received (``None`` before the second): what a
        source that respects 2.4's limit keeps at 60 s or more."""
        times = [c.at for c in self.calls]
        return min((b - a for a, b in itertools.pairwise(times)), default=None)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(PATH, self._get_responses_sms)
        return app

    async def _get_responses_sms(self, request: web.Request) -> web.Response:
        now = self.clock()
        try:
            fields = _fields(parse_xml(await request.read()))
        except PayloadError:
            fields = {}
        password = fields.pop("servicePassword", None)
        answered, response = self._answer(fields, password, now)
        self.calls.append(Received(now, fields, answered))
        if self.fail is Fail.HANG:
            await self.hold()  # the client times out first
        return response

    def _answer(
        self, fields: dict[str, str], password: str | None, now: float
    ) -> tuple[str, web.Response]:
        if self.fail is Fail.SERVER_ERROR:
            return "http_503", web.Response(status=503, text="Service Unavailable")
        last, self._last = self._last, now  # a refused call counts: DMC saw it
        service = fields.get("servicId", fields.get("serviceId"))
        if (service, password, fields.get("spaceId")) != (
            self.service_id,
            self.service_password,
            self.space_id,
        ):
            return "no_service_found", _fault("no_service_found", service or "")
        if last is not None and now - last < MINUTE:
            return "too_many_calls", _fault("too_many_calls", "un appel par minute")
        try:
            begin, end = _local(fields["beginDate"]), _local(fields["endDate"])
        except (KeyError, ValueError):
            return "invalid_parameter", _fault("invalid_parameter", "beginDate/endDate")
        if end < begin or (self.max_period is not None and end - begin > self.max_period):
            return "parametres_inconsistants", _fault(
                "parametres_inconsistants", "beginDate/endDate"
            )
        stop_only = fields.get("stopOnly", "").strip().lower() == "true"
        listed = [
            r for r in self.replies if begin <= r.call_date <= end and (r.stop or not stop_only)
        ]
        return "list", _envelope(
            '<ns2:getResponsesSMSResponse xmlns:ns2="http://servicedata.ws.dmc.sfrbt/"><return>'
            + "".join(_list(r) for r in listed)
            + f"<total>{len(listed)}</total></return></ns2:getResponsesSMSResponse>"
        )


def _fields(root: Element) -> dict[str, str]:
    """The texts of the leaf elements under the header's ``authenticate`` and the method."""
    fields: dict[str, str] = {}
    for parent in root.iter():
        if parent.tag.rpartition("}")[2] in ("authenticate", "getResponsesSMS"):
            for child in parent:
                fields[child.tag.rpartition("}")[2]] = (child.text or "").strip()
    return fields


def _local(value: str) -> datetime:
    return datetime.fromisoformat(value).replace(tzinfo=PARIS)


def _list(reply: Reply) -> str:
    date = reply.call_date.astimezone(PARIS).isoformat()
    return (
        f"<list><broadcastId>{escape(reply.broadcast_id)}</broadcastId>"
        f"<callAdress>{escape(reply.address)}</callAdress><callDate>{date}</callDate>"
        f"<callResponse>{escape(reply.response)}</callResponse>"
        f"<contactId>{escape(reply.contact_id)}</contactId>"
        f"<spaceId>{escape(reply.space_id)}</spaceId></list>"
    )


def _envelope(body: str, status: int = 200) -> web.Response:
    document = (
        "<?xml version='1.0' encoding='UTF-8'?>\n"
        '<S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/">'
        f"<S:Body>{body}</S:Body></S:Envelope>"
    )
    return web.Response(
        status=status, body=document.encode(), content_type="text/xml", charset="utf-8"
    )


def _fault(code: str, param: str) -> web.Response:
    return _envelope(
        '<S:Fault xmlns:ns4="http://www.w3.org/2003/05/soap-envelope">'
        f"<faultcode>S:Server</faultcode><faultstring>{code}</faultstring><detail>"
        '<ns2:DmcException xmlns:ns2="http://servicedata.ws.dmc.sfrbt/">'
        f"<message>{code}</message><params>{escape(param)}</params>"
        "</ns2:DmcException></detail></S:Fault>",
        status=500,
    )
