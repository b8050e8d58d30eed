"""The console's setup page: each provider's callback URLs to paste into its account (secrets
shown on a click, copy buttons), and a "send a test callback" button per callback that pushes
the provider's documented sample through the hub's real path, in this process, and shows what
the provider would have heard."""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web

from core.display import describe
from core.models import RawRequest, utc_now
from hub import handlers, operator, samples
from hub.console.render import render
from hub.endpoints import Endpoint, endpoints
from hub.handlers import RUNTIME, Answered
from hub.samples import Sample

NAMES = {
    "ecampaign": "eCampaign (PROSOLUCE)",
    "dmc": "DMC (SFR Business)",
    "isendpro": "iSendPro",
    "ecall": "eCall (F24)",
    "smsmode": "sMsmode",
}
TEST_AGENT = "callback-hub console (test callback)"
"""The ``User-Agent`` a test callback's request is kept with, if it is quarantined."""


@dataclass(frozen=True)
class Row:
    """One callback URL of the page."""

    endpoint: Endpoint
    url: str
    masked: str
    sample: Sample | None

    @property
    def anchor(self) -> str:
        return f"{self.endpoint.provider.value}-{self.endpoint.callback.name}"


@dataclass(frozen=True)
class Heard:
    """A test callback's outcome, as the page shows it."""

    anchor: str
    sample: str
    status: int
    body: str
    outcome: str
    reason: str
    events: list[str]
    quarantined: int | None


def base_of(request: web.Request) -> tuple[str, str]:
    """The public base URL of the callbacks: ``?base=`` when it is an http(s) URL, else the
    address the browser used; and a complaint about a ``?base=`` that is none ("" if none)."""
    given = request.query.get("base", "").strip()
    if given:
        url = urlsplit(given)
        if url.scheme in ("http", "https") and url.netloc and not url.query and not url.fragment:
            return given.rstrip("/"), ""
        return operator.origin_of(request), f"{given!r} is no http(s)://host[:port][/path] URL"
    return operator.origin_of(request), ""


def rows(request: web.Request, base: str) -> dict[str, list[Row]]:
    """The callback URLs by provider, with each one's current secret."""
    secrets = request.app[RUNTIME].secrets
    found: dict[str, list[Row]] = {}
    for endpoint in endpoints():
        provider, name = endpoint.provider, endpoint.callback.name
        row = Row(
            endpoint,
            url=base + endpoint.path(secrets[provider][0]),
            masked=base + endpoint.path("•" * 8),
            sample=samples.default(provider, name),
        )
        found.setdefault(provider.value, []).append(row)
    return found


async def setup_page(request: web.Request) -> web.Response:
    return _page(request, None)


def _page(request: web.Request, heard: Heard | None, status: int = 200) -> web.Response:
    base, complaint = base_of(request)
    return render(
        request,
        "setup.html",
        active="setup",
        status=status,
        title="Setup",
        base=base,
        complaint=complaint,
        providers=[(slug, NAMES.get(slug, slug), r) for slug, r in rows(request, base).items()],
        heard=heard,
    )


async def send_test(request: web.Request) -> web.Response:
    """POST ``provider``, ``callback``: the callback's default sample (``hub send``'s), through
    the hub's own path (parsed, journaled or quarantined, counted); the page with the answer."""
    form = await request.post()
    endpoint = next(
        (
            e
            for e in endpoints()
            if e.provider.value == form.get("provider") and e.callback.name == form.get("callback")
        ),
        None,
    )
    if endpoint is None:
        raise web.HTTPNotFound(text="no such callback\n")
    sample = samples.default(endpoint.provider, endpoint.callback.name)
    if sample is None:
        raise web.HTTPNotFound(text="this callback has no sample to send\n")
    answered = await _send(request.app, endpoint, sample)
    reply = answered.reply
    heard = Heard(
        anchor=f"{endpoint.provider.value}-{endpoint.callback.name}",
        sample=sample.name,
        status=reply.status,
        body=reply.body.decode(reply.charset or "utf-8", "replace"),
        outcome=answered.outcome,
        reason=answered.reason,
        events=[describe(e) for e in answered.events],
        quarantined=answered.quarantined,
    )
    return _page(request, heard)


async def _send(app: web.Application, endpoint: Endpoint, sample: Sample) -> Answered:
    """The sample as the provider sends it, past the secret and the allowlist (a test needs
    neither), through what a callback goes through once read (``hub.handlers.respond``)."""
    raw = RawRequest(
        provider=endpoint.provider,
        callback=endpoint.callback.name,
        method=sample.method,
        query=sample.input if sample.in_query else b"",
        body=b"" if sample.in_query else sample.input,
        content_type=sample.content_type,
        received_at=utc_now(),
    )
    headers = {"User-Agent": TEST_AGENT}
    if sample.content_type:
        headers["Content-Type"] = sample.content_type
    return await handlers.respond(app, endpoint.module, raw, headers, time.perf_counter())


def register(app: web.Application) -> None:
    app.router.add_get("/console/setup", setup_page, name="setup")
    app.router.add_post("/console/setup/test", send_test, name="setup-test")
