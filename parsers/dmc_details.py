"""What a DMC event tells besides its state, in ``details``: the service, the medium's ids,
its history step by step (UTC dates, durations, sizes, pages, codes), the facts of the current
status, and a call's ``vxml_info`` (voicemail, start and end, the route through the scenario)
and transfer."""

from __future__ import annotations

import re
from collections.abc import Mapping

from core.vocabulary import JsonValue
from parsers.dmc_dialects import Medium
from parsers.dmc_times import ReportTimes, from_epoch_ms, iso
from parsers.phones import to_e164
from parsers.text import count, optional

_ROUTE_STEP = re.compile(r"(?P<node>.*)\((?P<node_id>[^()]*)\):(?P<choice>.*)", re.DOTALL)


def details_of(
    username: str | None,
    medium: Medium,
    current: Mapping[str, str],
    times: ReportTimes,
    *,
    inbound: bool,
) -> dict[str, JsonValue]:
    """The ``details`` of ``medium``, whose current status is ``current`` (one of its history's
    entries, or empty when it has none)."""
    details: dict[str, JsonValue] = {}
    if username is not None:
        details["username"] = username
    for name in ("broadcast_id", "contact_id", "space_id"):
        value = optional(medium.fields, name)
        if value is not None:
            details[name] = value
    history: list[JsonValue] = []
    current_facts: dict[str, JsonValue] = {}
    for status in medium.history:
        facts = _facts(status)
        history.append(_step(status, facts, times))
        if status is current:
            current_facts = facts
    details["history"] = history
    if inbound:
        current_facts.pop("info", None)  # it is the event's text
    details.update(current_facts)
    if medium.vxml is not None:
        details["vxml"] = _vxml(medium.vxml)
    if medium.transfer is not None:
        details["transfer_to"] = to_e164(medium.transfer.get("to"))
    return details


def _step(
    status: Mapping[str, str], facts: dict[str, JsonValue], times: ReportTimes
) -> dict[str, JsonValue]:
    """One history entry: type, UTC date, the facts of that status and its code."""
    step: dict[str, JsonValue] = {}
    if "type" in status:
        step["type"] = status["type"]
    date = optional(status, "date")
    if date is not None:
        step["date"] = iso(times[date])
    step.update(facts)
    if "code" in status:
        step["code"] = status["code"]
    return step


def _facts(status: Mapping[str, str]) -> dict[str, JsonValue]:
    """``time`` (call/fax duration, s), ``amd``, ``size`` (bytes), ``page`` and ``info``."""
    facts: dict[str, JsonValue] = {}
    for name, key in (("time", "duration"), ("size", "size"), ("page", "pages")):
        value = optional(status, name)
        if value is not None:
            number = count(value)
            facts[key] = value if number is None else number
    for name in ("amd", "info"):
        if name in status:
            facts[name] = status[name]
    return facts


def _vxml(vxml: Mapping[str, str]) -> dict[str, JsonValue]:
    """``vxml_info``: voicemail flag, call start/end (UTC), duration, outcome and route taken."""
    out: dict[str, JsonValue] = {}
    voicemail = vxml.get("voicemail", "").strip().lower()
    if voicemail in ("true", "false"):
        out["voicemail"] = voicemail == "true"
    start, end = optional(vxml, "start"), optional(vxml, "end")
    if start is not None:
        out["start"] = iso(from_epoch_ms(start))
    if end is not None:
        out["end"] = iso(from_epoch_ms(end))
    if start is not None and end is not None:
        out["duration_ms"] = int(end) - int(start)
    for name in ("termination", "result"):
        if name in vxml:
            out[name] = vxml[name]
    route = optional(vxml, "route")
    if route is not None:
        out["route"] = [_route_step(step) for step in route.split("|") if step.strip()]
    return out


def _route_step(step: str) -> dict[str, JsonValue]:
    """``Menu 1(10590):1``: the scenario node, its id and the way out taken."""
    match = _ROUTE_STEP.fullmatch(step.strip())
    if match is None:
        return {"node": step.strip()}
    return {"node": match["node"], "node_id": match["node_id"], "choice": match["choice"]}
