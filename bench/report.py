"""Results: the targets checked (issue 16's: ingest, half rate, worker, memory, parse path;
issue 17's: the read model's lookups, the console's pages, the callbacks' rate under lookups)
and the JSON file (the machine's description: ``bench.machine``; the printed table:
``bench.table``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from prometheus_client.parser import text_string_to_metric_families

Results = dict[str, Any]
"""What a run measured (the JSON document, less ``targets``)."""


@dataclass(frozen=True)
class Target:
    name: str
    what: str
    value: float | None
    """None when the step that measures it did not run or failed."""
    limit: float
    at_most: bool = False
    """The value must be at most ``limit`` (else at least)."""

    @property
    def verdict(self) -> str:
        if self.value is None:
            return "n/a"
        ok = self.value <= self.limit if self.at_most else self.value >= self.limit
        return "PASS" if ok else "MISS"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "what": self.what,
            "value": self.value,
            "limit": self.limit,
            "at_most": self.at_most,
            "verdict": self.verdict,
        }


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run of median rate (the lower one of the middle two for an even count), with every
    run's rate beside it."""
    ordered = sorted(runs, key=lambda r: r["rps"])
    return {**ordered[(len(ordered) - 1) // 2], "rounds_rps": [r["rps"] for r in runs]}


def get(results: Results, *keys: str) -> Any:
    node: Any = results
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def rps(results: Results, step: str) -> float | None:
    value = get(results, "http", step, "rps")
    return float(value) if value is not None else None


def targets(results: Results) -> list[Target]:
    """The issue's targets, from what the run measured."""
    rss = get(results, "memory", "sustained")
    outage = get(results, "memory", "outage")
    fwd = results.get("forwarder") or {}
    parsers = results.get("parsers") or {}
    parse_targets = [
        Target(
            f"parse_{provider}",
            f"{provider} parse path CPU µs/request / before issue 16",
            ratio(p.get("us_per_request"), p.get("before_us_per_request")),
            0.50,
            at_most=True,
        )
        for provider, p in parsers.items()
    ]
    return [
        Target(
            "ingest_get",
            "hub GET (iSendPro DLR) / bare aiohttp GET",
            ratio(rps(results, "hub_get"), rps(results, "bare_get")),
            0.40,
        ),
        Target(
            "ingest_post",
            "hub XML POST (DMC) / bare aiohttp POST",
            ratio(rps(results, "hub_post"), rps(results, "bare_post")),
            0.30,
        ),
        Target(
            "vs_naive_get",
            "hub GET / naive publish-and-await GET",
            ratio(rps(results, "hub_get"), rps(results, "naive_get")),
            3.0,
        ),
        Target(
            "vs_naive_post",
            "hub POST / naive publish-and-await POST",
            ratio(rps(results, "hub_post"), rps(results, "naive_post")),
            3.0,
        ),
        Target(
            "p99_half_get",
            "hub GET p99 (ms) at half its max rate",
            get(results, "http", "hub_get_half", "p99_ms"),
            10.0,
            at_most=True,
        ),
        Target(
            "p99_half_post",
            "hub POST p99 (ms) at half its max rate",
            get(results, "http", "hub_post_half", "p99_ms"),
            10.0,
            at_most=True,
        ),
        *(
            Target(
                f"cpu_half_{style}",
                f"hub {style.upper()} CPU µs/request at half its max rate / at its max rate",
                ratio(
                    get(results, "http", f"hub_{style}_half", "server_cpu_us_per_req"),
                    get(results, "http", f"hub_{style}", "server_cpu_us_per_req"),
                ),
                1.3,
                at_most=True,
            )
            for style in ("get", "post")
        ),
        Target(
            "forwarder",
            "forwarder events/s / raw aio-pika publisher events/s",
            ratio(fwd.get("eps"), fwd.get("ceiling_eps")),
            0.90,
        ),
        Target(
            "rss_flat",
            "hub RSS growth over the sustained run",
            _growth(rss),
            0.10,
            at_most=True,
        ),
        Target(
            "outage_rss",
            "hub RSS growth while the broker is down (journal grows on disk)",
            _growth(outage) if outage and outage.get("journal_growth_bytes", 0) > 0 else None,
            0.10,
            at_most=True,
        ),
        *parse_targets,
        Target(
            "lookup_timeline",
            "p99 (ms) of a message's timeline (the lookup step's index: 1 M events)",
            get(results, "lookup", "lookups", "timeline", "p99_ms"),
            50.0,
            at_most=True,
        ),
        Target(
            "lookup_phone",
            "p99 (ms) of a phone-number search, first page (same index)",
            get(results, "lookup", "lookups", "phone", "p99_ms"),
            200.0,
            at_most=True,
        ),
        Target(
            "console_pages",
            "p99 (ms) of the slowest console page, whole HTML (events, phone, message, overview)",
            get(results, "lookup", "pages", "slowest_p99_ms"),
            1000.0,
            at_most=True,
        ),
        *under_load(results),
    ]


UNDER_LOAD_RATIO = 0.9
"""The callbacks' rate while an operator looks things up, at least this share of their rate
alone (``bench/contention.py``). At the operator's pace (5 requests a second: a third each
timelines, phone searches and console pages), the lookup step's figures (2 to 5 ms a lookup,
5 to 15 ms a page) add up to 30 to 50 ms of CPU a second: 3 to 5 % of the hub's core (the step
measures it too: ``without_callbacks.core_share``). 0.9 allows that and as much again for the
noise between two runs of the same hub on a shared machine (the median of alternated rounds).
A lower ratio means the lookups cost the callbacks more than their own CPU time: they hold the
event loop (work on the loop, or the GIL held in a thread)."""


def under_load(results: Results) -> list[Target]:
    """Issue 17's "while callbacks keep their rate": the rate ratio, and the lookups' p99 over
    HTTP while callbacks run at full rate, against the lookup step's limits."""
    found = results.get("under_load") or {}
    p99 = {kind: get(found, "lookups", kind, "p99_ms") for kind in ("timeline", "phone", "page")}
    return [
        Target(
            "lookup_under_load",
            "callbacks' req/s (GET, full rate) while an operator looks up / alone",
            found.get("ratio"),
            UNDER_LOAD_RATIO,
        ),
        Target(
            "timeline_under_load",
            "p99 (ms) of a timeline over HTTP (API) while callbacks run at full rate",
            p99["timeline"],
            50.0,
            at_most=True,
        ),
        Target(
            "phone_under_load",
            "p99 (ms) of a phone search over HTTP (API) while callbacks run at full rate",
            p99["phone"],
            200.0,
            at_most=True,
        ),
        Target(
            "pages_under_load",
            "p99 (ms) of the console's pages while callbacks run at full rate",
            p99["page"],
            1000.0,
            at_most=True,
        ),
    ]


def versus_parse(results: Results) -> dict[str, dict[str, float | None]]:
    """The hub's servers against parse-and-answer (``bench/refs.py``, the ceiling of ingest):
    req/s ratio and CPU ratio (parse-and-answer µs/req ÷ the server's), per server and style."""
    out: dict[str, dict[str, float | None]] = {}
    for server in ("journal", "hub"):
        for style in ("get", "post"):
            step = f"{server}_{style}"
            if get(results, "http", step) is None:
                continue
            out[step] = {
                "rps": ratio(rps(results, step), rps(results, f"parse_{style}")),
                "cpu": ratio(
                    get(results, "http", f"parse_{style}", "server_cpu_us_per_req"),
                    get(results, "http", step, "server_cpu_us_per_req"),
                ),
            }
    return out


REFERENCES = ("bare", "naive", "parse")
"""The references the hub's rate is read against round by round (:func:`by_round`)."""


def by_round(results: Results) -> dict[str, dict[str, list[float | None]]]:
    """The hub's rate (with its worker and the broker) against each reference's, round by round:
    the rounds interleave every server (``Run.rounds``), so a round's two runs are a minute
    apart at most, while the VM's speed moves between rounds (one server's rounds have differed
    by up to 2 times). The targets read the medians of each server's rounds; these ratios show
    how much of a verdict is that drift. ``{style: {reference: [ratio of round 1, ...]}}``,
    None for a round where the reference served nothing; a reference whose rounds do not match
    the hub's one for one (a partial results file) is left out."""
    out: dict[str, dict[str, list[float | None]]] = {}
    for style in ("get", "post"):
        hub = get(results, "http", f"hub_{style}", "rounds_rps") or []
        found = {}
        for reference in REFERENCES:
            theirs = get(results, "http", f"{reference}_{style}", "rounds_rps") or []
            if len(theirs) != len(hub):
                continue
            pairs = [ratio(ours, their) for ours, their in zip(hub, theirs, strict=True)]
            if any(pair is not None for pair in pairs):
                found[reference] = pairs
        if found:
            out[style] = found
    return out


def _growth(memory: dict[str, Any] | None) -> float | None:
    if not memory or not memory.get("before_kib"):
        return None
    return abs(memory["after_kib"] / memory["before_kib"] - 1)


# -- the files --------------------------------------------------------------------------------


def write(results: Results, directory: Path, now: Callable[[], datetime] | None = None) -> Path:
    """Writes ``bench-results/<timestamp>.json`` with the targets' verdicts; returns its path."""
    stamp = (now or (lambda: datetime.now(UTC)))().strftime("%Y%m%dT%H%M%SZ")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{stamp}.json"
    doc = {
        **results,
        "versus_parse": versus_parse(results),
        "by_round": by_round(results),
        "targets": [t.as_dict() for t in targets(results)],
    }
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    return path


def buckets(exposition: str, name: str) -> dict[str, float]:
    """A histogram's cumulative counts by upper bound (``le``), summed over its other labels,
    from a Prometheus exposition."""
    return _summed(exposition, f"{name}_bucket", "le")


def outcomes(exposition: str) -> dict[str, float]:
    """``hub_callbacks_total`` summed by outcome, from a Prometheus exposition."""
    return _summed(exposition, "hub_callbacks_total", "outcome")


def _summed(exposition: str, sample: str, label: str) -> dict[str, float]:
    """The values of the samples named ``sample``, summed by their ``label`` (read by
    prometheus_client's own parser)."""
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(exposition):
        for found in family.samples:
            if found.name == sample and label in found.labels:
                key = found.labels[label]
                totals[key] = totals.get(key, 0.0) + found.value
    return totals
