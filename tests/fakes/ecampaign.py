"""A fake of eCampaign's feedback methods (seed 000, p.41-43): ``POST
/manageFeedback/<sms|fax|mail>/getResponses`` and ``.../getBlacklist`` on loopback, the form field
``xml`` holding the ``login`` block, as every method of the document is called (p.7).

The document's samples of these two methods were lost in its text conversion: the fake answers
in the shape every documented answer has (``<ecampaign><code/><message/>`` and an element holding
the list, p.17, p.46, p.48), which ``parsers.pull.ecampaign`` describes. Its codes are the
annex's (p.51): 0 success, 2 malformed XML (no ``xml`` field, or not XML), 3 user or password
invalid, 4 web services not enabled on the account (:attr:`Fail.NOT_ENABLED`); 1 for a channel
that has no feedback. The methods take no period: there is no "date range too wide" to fake.

State: the replies and blacklist entries per channel (:meth:`FakeEcampaign.reply`,
:meth:`FakeEcampaign.blacklist`), listed at every call (eCampaign documents no way to
acknowledge them); the calls received (:attr:`FakeEcampaign.calls`, without the ``xml`` field);
:attr:`FakeEcampaign.fail` for a server error (HTTP 500) or no answer at all. Served as every
fake is (``tests.fakes.base``).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from enum import Enum
from xml.sax.saxutils import escape

from aiohttp import web

from core.errors import PayloadError
from parsers.xml import parse_xml
from tests.fakes.base import Fake

USER, PASSWORD = "demo", "s3cret"
CHANNELS = ("sms", "fax", "mail")


class Fail(Enum):
    NOT_ENABLED = "not_enabled"
    SERVER_ERROR = "server_error"
    HANG = "hang"


@dataclass(frozen=True)
class Entry:
    """A reply (``message``) or a blacklist entry (``reason``): a number (its country code
    apart, without its leading 0, as the document writes them) or an e-mail address."""

    date: str
    """``AAAA-MM-JJ HH:MM:SS``, French local time."""
    code: str = ""
    number: str = ""
    email: str = ""
    message: str = ""
    reason: str = ""


@dataclass(frozen=True)
class Received:
    at: float
    path: str
    user: str
    """The ``login`` user (the password and the rest of ``xml`` are not kept)."""
    code: str
    """The return code answered, or ``http_500``."""


@dataclass
class FakeEcampaign(Fake[Received]):
    user: str = USER
    password: str = PASSWORD
    responses: dict[str, list[Entry]] = field(default_factory=lambda: {c: [] for c in CHANNELS})
    blacklists: dict[str, list[Entry]] = field(default_factory=lambda: {c: [] for c in CHANNELS})
    fail: Fail | None = None

    def reply(self, channel: str, entry: Entry) -> Entry:
        self.responses[channel].append(entry)
        return entry

    def blacklist(self, channel: str, entry: Entry) -> Entry:
        self.blacklists[channel].append(entry)
        return entry

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(
            "/manageFeedback/{channel}/{method:getResponses|getBlacklist}", self._feedback
        )
        return app

    async def _feedback(self, request: web.Request) -> web.Response:
        form = await request.post()
        document = form.get("xml")
        user, code, listed = self._answer(request, document if isinstance(document, str) else None)
        failed = self.fail is Fail.SERVER_ERROR
        self.calls.append(
            Received(time.monotonic(), request.path, user, "http_500" if failed else code)
        )
        if self.fail is Fail.HANG:
            await self.hold()  # the client times out first
        if failed:
            return web.Response(status=500, text="Internal Server Error")
        method = request.match_info["method"]
        return _xml(code, method, listed if code == "0" else None)

    def _answer(self, request: web.Request, document: str | None) -> tuple[str, str, list[Entry]]:
        """The login's user, the return code, the entries to list."""
        if document is None:
            return "", "2", []
        try:
            root = parse_xml(document)
        except PayloadError:
            return "", "2", []
        login = {e.tag: (e.text or "").strip() for e in root.iterfind("login/*")}
        user, password = login.get("user", ""), login.get("password", "")
        if login.get("md5", "").lower() == "true":
            expected = hashlib.md5(self.password.encode(), usedforsecurity=False).hexdigest()
        else:
            expected = self.password
        if user != self.user or password != expected:
            return user, "3", []
        if self.fail is Fail.NOT_ENABLED:
            return user, "4", []
        channel, method = request.match_info["channel"], request.match_info["method"]
        if channel not in CHANNELS or root.find(f"manageFeedback/{method}") is None:
            return user, "1", []
        entries = self.responses if method == "getResponses" else self.blacklists
        return user, "0", list(entries[channel])


_MESSAGES = {
    "0": "Opération effectuée avec succès",
    "1": "Requête invalide",
    "2": "Requête XML malformée ou invalide",
    "3": "Nom d'utilisateur et/ou mot de passe invalides",
    "4": "L'accès aux web-services n'est pas activé sur ce compte",
}


def _xml(code: str, method: str, entries: list[Entry] | None) -> web.Response:
    lines = ['<?xml version="1.0"?>', "<ecampaign>", f"      <code>{code}</code>"]
    lines.append(f"      <message>{escape(_MESSAGES[code])}</message>")
    if entries is not None:
        tag = "response" if method == "getResponses" else "member"
        lines.append(f"      <{method}>")
        for entry in entries:
            lines.append(f"             <{tag}>")
            lines.append(f"                    <date>{escape(entry.date)}</date>")
            for name in ("code", "number", "email"):
                if getattr(entry, name):
                    lines.append(
                        f"                    <{name}>{escape(getattr(entry, name))}</{name}>"
                    )
            last = ("message", entry.message) if tag == "response" else ("reason", entry.reason)
            lines.append(f"                    <{last[0]}>{escape(last[1])}</{last[0]}>")
            lines.append(f"             </{tag}>")
        lines.append(f"      </{method}>")
    lines.append("</ecampaign>")
    body = ("\n".join(lines) + "\n").encode()
    return web.Response(body=body, content_type="text/xml", charset="utf-8")
