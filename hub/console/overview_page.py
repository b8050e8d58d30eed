"""The console's overview (``/console/overview``, where ``/console/`` leads): events per minute
over the last hour by provider and state (a plot drawn on the server, inline SVG: no script,
nothing external), from the read model (the worker's counts by minute; with ``HUB_INDEX_URL``,
every replica's events in the shared index); and the hub's status as ``GET /api/v1/status``
computes it (``hub.api.status.current``): backlog and its age, the quarantine, the broker, the
shared index (with ``HUB_INDEX_URL``: reached or not, the events waiting for it), the journal
and the worker, the callbacks' rate."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field

from aiohttp import web

from hub.api import status
from hub.console.render import render
from hub.readmodel import READ_MODEL, Minute, Unavailable
from hub.settings import Settings

MINUTES = 60
"""The plot's span: the last hour, the current minute included."""
GOOD = frozenset({"delivered", "received", "completed"})
BAD = frozenset({"failed", "expired", "cancelled"})
GROUPS = (("good", "delivered, received, completed"), ("bad", "failed, expired, cancelled"),
          ("other", "any other state"))  # fmt: skip
"""How a bar is split: its colours' classes (``console.css``) and what each stands for."""
WIDTH, HEIGHT, BAR = 600, 110, 10
"""The plot's view box and one minute's width in it."""


@dataclass
class Provider:
    """One provider's hour: counts by minute and group (the plot), and by state (the table)."""

    name: str
    minutes: dict[int, dict[str, int]] = field(default_factory=lambda: defaultdict(dict))
    states: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    @property
    def total(self) -> int:
        return sum(self.states.values())


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    height: float
    group: str
    label: str


def group_of(state: str) -> str:
    return "good" if state in GOOD else "bad" if state in BAD else "other"


def per_provider(rows: list[Minute], start: int) -> list[Provider]:
    """Each provider's counts by minute from ``start`` (the read model's rows)."""
    found: dict[str, Provider] = {}
    for minute, provider, state, count in rows:
        p = found.setdefault(provider, Provider(provider))
        slot = p.minutes[(minute - start) // 60]
        slot[group_of(state)] = slot.get(group_of(state), 0) + count
        p.states[state] += count
    return sorted(found.values(), key=lambda p: p.name)


def bars(provider: Provider, top: int, start: int) -> list[Bar]:
    """The provider's stacked bars, scaled so that ``top`` events fill the plot's height."""
    drawn: list[Bar] = []
    for slot, groups in sorted(provider.minutes.items()):
        base = float(HEIGHT)
        when = time.strftime("%H:%M", time.gmtime(start + slot * 60))
        for group, _ in GROUPS:
            count = groups.get(group, 0)
            if not count:
                continue
            height = max(count / top * (HEIGHT - 10), 1.0)
            base -= height
            label = f"{when} UTC: {count} {group} ({provider.name})"
            drawn.append(Bar(slot * BAR + 1, round(base, 2), round(height, 2), group, label))
    return drawn


async def overview(request: web.Request) -> web.Response:
    end = (int(time.time()) // 60 + 1) * 60
    start = end - MINUTES * 60
    error = ""
    providers: list[Provider] = []
    try:
        providers = per_provider(await request.app[READ_MODEL].per_minute(start, end), start)
    except Unavailable as exc:
        error = f"No counts for now. {exc}."
    top = max((sum(g.values()) for p in providers for g in p.minutes.values()), default=0)
    now = await status.current(request.app, request.app[SETTINGS])
    return render(
        request,
        "overview.html",
        active="overview",
        title="Overview",
        hub=now,
        error=error,
        providers=[(p, bars(p, top, start)) for p in providers],
        top=top,
        groups=GROUPS,
        width=WIDTH,
        height=HEIGHT,
        start=time.strftime("%H:%M", time.gmtime(start)),
        age=_age,
    )


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


SETTINGS = web.AppKey("overview_settings", Settings)


def register(app: web.Application, settings: Settings) -> None:
    app[SETTINGS] = settings
    app.router.add_get("/console/overview", overview, name="overview")
