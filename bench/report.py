"""Results: the targets checked (issue 16's: ingest, half rate, worker, memory, parse path;
issue 17's: the read model's lookups, the console's pages), the printed table, the JSON file
(the machine's description: ``bench.machine``)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

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


def _get(results: Results, *keys: str) -> Any:
    node: Any = results
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _rps(results: Results, step: str) -> float | None:
    value = _get(results, "http", step, "rps")
    return float(value) if value is not None else None


def targets(results: Results) -> list[Target]:
    """The issue's targets, from what the run measured."""
    rss = _get(results, "memory", "sustained")
    outage = _get(results, "memory", "outage")
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
            ratio(_rps(results, "hub_get"), _rps(results, "bare_get")),
            0.40,
        ),
        Target(
            "ingest_post",
            "hub XML POST (DMC) / bare aiohttp POST",
            ratio(_rps(results, "hub_post"), _rps(results, "bare_post")),
            0.30,
        ),
        Target(
            "vs_naive_get",
            "hub GET / naive publish-and-await GET",
            ratio(_rps(results, "hub_get"), _rps(results, "naive_get")),
            3.0,
        ),
        Target(
            "vs_naive_post",
            "hub POST / naive publish-and-await POST",
            ratio(_rps(results, "hub_post"), _rps(results, "naive_post")),
            3.0,
        ),
        Target(
            "p99_half_get",
            "hub GET p99 (ms) at half its max rate",
            _get(results, "http", "hub_get_half", "p99_ms"),
            10.0,
            at_most=True,
        ),
        Target(
            "p99_half_post",
            "hub POST p99 (ms) at half its max rate",
            _get(results, "http", "hub_post_half", "p99_ms"),
            10.0,
            at_most=True,
        ),
        *(
            Target(
                f"cpu_half_{style}",
                f"hub {style.upper()} CPU µs/request at half its max rate / at its max rate",
                ratio(
                    _get(results, "http", f"hub_{style}_half", "server_cpu_us_per_req"),
                    _get(results, "http", f"hub_{style}", "server_cpu_us_per_req"),
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
            _get(results, "lookup", "lookups", "timeline", "p99_ms"),
            50.0,
            at_most=True,
        ),
        Target(
            "lookup_phone",
            "p99 (ms) of a phone-number search, first page (same index)",
            _get(results, "lookup", "lookups", "phone", "p99_ms"),
            200.0,
            at_most=True,
        ),
        Target(
            "console_pages",
            "p99 (ms) of the slowest console page, whole HTML (events, phone, message, overview)",
            _get(results, "lookup", "pages", "slowest_p99_ms"),
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
            if _get(results, "http", step) is None:
                continue
            out[step] = {
                "rps": ratio(_rps(results, step), _rps(results, f"parse_{style}")),
                "cpu": ratio(
                    _get(results, "http", f"parse_{style}", "server_cpu_us_per_req"),
                    _get(results, "http", step, "server_cpu_us_per_req"),
                ),
            }
    return out


def _growth(memory: dict[str, Any] | None) -> float | None:
    if not memory or not memory.get("before_kib"):
        return None
    return abs(memory["after_kib"] / memory["before_kib"] - 1)


# -- the printed table ----------------------------------------------------------------------

HTTP_ROWS = (
    ("bare_get", "bare aiohttp, GET"),
    ("bare_post", "bare aiohttp, POST"),
    ("parse_get", "parse and answer, GET (iSendPro)"),
    ("parse_post", "parse and answer, POST (DMC XML)"),
    ("naive_get", "naive publish+confirm, GET"),
    ("naive_post", "naive publish+confirm, POST"),
    ("journal_get", "hub, no broker, GET (iSendPro)"),
    ("journal_post", "hub, no broker, POST (DMC XML)"),
    ("hub_get", "hub + forwarder, GET (iSendPro)"),
    ("hub_post", "hub + forwarder, POST (DMC XML)"),
    ("hub_get_half", "hub + forwarder, GET, at half max"),
    ("hub_post_half", "hub + forwarder, POST, at half max"),
)


def _fmt(value: float | None, spec: str = ",.0f") -> str:
    return "-" if value is None else format(value, spec)


def table(results: Results) -> str:
    lines = [
        "HTTP (wrk -t1, loopback; median of the rounds). µs/req: the server's CPU time per"
        " request; noise: cores other processes of the machine kept busy meanwhile",
        f"  {'':34} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'µs/req':>7} {'noise':>5}"
        f" {'vs bare':>7} {'(CPU)':>6} {'vs naive':>8}",
    ]
    for step, label in HTTP_ROWS:
        r = _get(results, "http", step)
        if r is None:
            continue
        style = step.split("_")[1]
        paced = step.endswith("_half")  # a chosen rate: no ratio to a maximum
        bare = None if paced else ratio(r["rps"], _rps(results, f"bare_{style}"))
        naive = None if paced else ratio(r["rps"], _rps(results, f"naive_{style}"))
        cpu = ratio(
            _get(results, "http", f"bare_{style}", "server_cpu_us_per_req"),
            r.get("server_cpu_us_per_req"),
        )
        lines.append(
            f"  {label:34} {_fmt(r['rps']):>7} {_fmt(r['p50_ms'], '.2f'):>7}"
            f" {_fmt(r['p99_ms'], '.2f'):>7} {_fmt(r.get('server_cpu_us_per_req')):>7}"
            f" {_fmt(r.get('foreign_cores'), '.2f'):>5} {_fmt(bare, '.0%'):>7}"
            f" {_fmt(cpu, '.0%'):>6} {_fmt(naive, '.1f'):>8}"
        )
    fwd = results.get("forwarder")
    if fwd:
        lines.append("Forwarder (journal → RabbitMQ, confirms)")
        raw = fwd.get("raw") or []
        lines.append(
            f"  forwarder {_fmt(fwd.get('eps'))} events/s"
            f" ({_fmt(fwd.get('cpu_us_per_event'))} µs CPU/event),"
            f" raw aio-pika {' / '.join(_fmt(r['eps']) for r in raw)} events/s"
            f" ({' / '.join(_fmt(r['cpu_us_per_event']) for r in raw)} µs CPU/event,"
            f" window {fwd.get('window')}): "
            f"{_fmt(ratio(fwd.get('eps'), fwd.get('ceiling_eps')), '.0%')} of the best"
        )
    for key, d in (results.get("disk") or {}).items():
        lines.append(
            f"Disk, fsync of a 4 KiB append ({key}): p50 {d['p50_ms']:.2f} ms,"
            f" p99 {d['p99_ms']:.2f}, p99.9 {d['p99.9_ms']:.2f}, max {d['max_ms']:.1f}"
            f" ({d['syncs']} syncs)"
        )
    ingest = {k: v for k, v in versus_parse(results).items() if v["rps"] is not None}
    if ingest:
        lines.append("Ingest / parse and answer (req/s ratio, CPU ratio in brackets)")
        for step, label in HTTP_ROWS:
            if step in ingest:
                r = ingest[step]
                lines.append(f"  {label:34} {_fmt(r['rps'], '.0%'):>7} ({_fmt(r['cpu'], '.0%')})")
    parsers = results.get("parsers")
    if parsers:
        lines.append(
            "Parse path (CPU µs/request, one core: request view, parser, JSON; parser alone;"
            " before issue 16 -> target)"
        )
        for provider, p in parsers.items():
            lines.append(
                f"  {provider:10} {_fmt(p['us_per_request'], '.1f'):>7}"
                f" {_fmt(p['parse_us_per_request'], '.1f'):>7}"
                f"   before {_fmt(p.get('before_us_per_request'), '.1f'):>6}"
                f" -> {_fmt(p.get('target_us_per_request'), '.1f'):>6}"
                f"   ({len(p['samples'])} samples, {p['events_per_request']:g} events/request)"
            )
    found = results.get("lookup")
    if found:
        lines.append(
            f"Read model ({found['events']:,} events indexed at"
            f" {_fmt(found.get('index_events_per_second'))} events/s; index"
            f" {found['index_bytes'] / 2**20:.0f} MiB, journal {found['journal_bytes'] / 2**20:.0f}"
            " MiB): lookup ms, p50 / p99 / max / CPU p99 (the index's share: p50 / p99)"
        )
        alone = found["lookups"].get("index_only", {})
        for name, t in found["lookups"].items():
            if not isinstance(t, dict) or "p99_ms" not in t:
                continue
            share = alone.get(name)
            own = f"  (index {share['p50_ms']:.2f} / {share['p99_ms']:.2f})" if share else ""
            cpu = t.get("cpu_p99_ms")
            lines.append(
                f"  {name:26} {t['p50_ms']:7.2f} {t['p99_ms']:7.2f} {t['max_ms']:7.2f}"
                f" {_fmt(cpu, '7.2f'):>7}{own}"
            )
        shown = found.get("pages", {})
        if shown:
            lines.append("  console pages, ms p50 / p99 / max (the hub's whole answer)")
        for name, t in shown.items():
            if isinstance(t, dict):
                lines.append(
                    f"  {name:26} {t['p50_ms']:7.2f} {t['p99_ms']:7.2f} {t['max_ms']:7.2f}"
                )
    for key, label in (("sustained", "sustained run"), ("outage", "broker outage")):
        m = _get(results, "memory", key)
        if m:
            lines.append(
                f"Memory, {label} ({m['seconds']:.0f} s): RSS {m['before_kib'] / 1024:.1f}"
                f" → {m['after_kib'] / 1024:.1f} MiB (max {m['max_kib'] / 1024:.1f}),"
                f" journal {m['journal_before_bytes'] / 2**20:.0f} →"
                f" {m['journal_after_bytes'] / 2**20:.0f} MiB"
            )
    lines.append("Targets")
    for t in targets(results):
        shown = _fmt(t.value, ".3g")
        op = "<=" if t.at_most else ">="
        lines.append(f"  {t.verdict:4}  {t.name:14} {shown:>8} {op} {t.limit:<5g} {t.what}")
    return "\n".join(lines)


# -- the files --------------------------------------------------------------------------------


def write(results: Results, directory: Path, now: Callable[[], datetime] | None = None) -> Path:
    """Writes ``bench-results/<timestamp>.json`` with the targets' verdicts; returns its path."""
    stamp = (now or (lambda: datetime.now(UTC)))().strftime("%Y%m%dT%H%M%SZ")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{stamp}.json"
    doc = {
        **results,
        "versus_parse": versus_parse(results),
        "targets": [t.as_dict() for t in targets(results)],
    }
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    return path


def outcomes(exposition: str) -> dict[str, float]:
    """``hub_callbacks_total`` summed by outcome, from a Prometheus exposition."""
    totals: dict[str, float] = {}
    for match in re.finditer(
        r'^hub_callbacks_total\{[^}]*outcome="(\w+)"[^}]*\} (\S+)$', exposition, re.M
    ):
        totals[match.group(1)] = totals.get(match.group(1), 0.0) + float(match.group(2))
    return totals
