"""The printed table of a run's results: the HTTP rows with their ratios, the forwarder, the
disk, the parse path, the read model and the callbacks under lookups, the shared index's cost to
the worker, the targets' verdicts."""

from __future__ import annotations

from typing import Any

from bench.report import Results, by_round, get, ratio, rps, targets, versus_parse

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
    ("bare_get_half", "bare aiohttp, GET, at half max"),
    ("bare_post_half", "bare aiohttp, POST, at half max"),
    ("parse_get_half", "parse and answer, GET, at half max"),
    ("parse_post_half", "parse and answer, POST, at half max"),
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
    if not results.get("http"):  # a run of some steps only (--read-model, --shared-index)
        lines = []
    for step, label in HTTP_ROWS:
        r = get(results, "http", step)
        if r is None:
            continue
        style = step.split("_")[1]
        paced = step.endswith("_half")  # a chosen rate: no ratio to a maximum
        bare = None if paced else ratio(r["rps"], rps(results, f"bare_{style}"))
        naive = None if paced else ratio(r["rps"], rps(results, f"naive_{style}"))
        cpu = ratio(
            get(results, "http", f"bare_{style}", "server_cpu_us_per_req"),
            r.get("server_cpu_us_per_req"),
        )
        lines.append(
            f"  {label:34} {_fmt(r['rps']):>7} {_fmt(r['p50_ms'], '.2f'):>7}"
            f" {_fmt(r['p99_ms'], '.2f'):>7} {_fmt(r.get('server_cpu_us_per_req')):>7}"
            f" {_fmt(r.get('foreign_cores'), '.2f'):>5} {_fmt(bare, '.0%'):>7}"
            f" {_fmt(cpu, '.0%'):>6} {_fmt(naive, '.1f'):>8}"
        )
    lines += _round_lines(results)
    lines += _half_lines(results)
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
    lines += _under_load_lines(results.get("under_load"))
    lines += _shared_index_lines(results.get("shared_index"))
    for key, label in (("sustained", "sustained run"), ("outage", "broker outage")):
        m = get(results, "memory", key)
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
        lines.append(f"  {t.verdict:4}  {t.name:19} {shown:>8} {op} {t.limit:<5g} {t.what}")
    return "\n".join(lines)


def _under_load_lines(found: dict[str, Any] | None) -> list[str]:
    if not found:
        return []
    lines = [
        f"Callbacks under lookups ({found['style'].upper()} at full rate, {found['rounds']}"
        f" rounds of {found['seconds']:g} s, alternated; an operator at"
        f" {found['rate_per_second']:g} requests/s: timeline, phone search, console page)"
    ]
    for key, label in (("alone", "alone"), ("with_lookups", "with lookups")):
        r = found[key]
        rounds = " / ".join(_fmt(v) for v in r.get("rounds_rps", []))
        lines.append(
            f"  {label:13} {_fmt(r['rps']):>7} req/s, p99 {r['p99_ms']:.1f} ms,"
            f" {_fmt(r.get('server_cpu_us_per_req'))} µs/req, noise"
            f" {_fmt(r.get('foreign_cores'), '.2f')}  (rounds {rounds})"
        )
    each = " / ".join(_fmt(v, ".2f") for v in found.get("round_ratios", []))
    both = f"{_fmt(found.get('ratio'), '.2f')} (CPU {_fmt(found.get('cpu_ratio'), '.2f')})"
    lines.append(f"  with ÷ alone  {both}; each round {each}")
    for kind, t in (found.get("lookups") or {}).items():
        lines.append(
            f"  lookups, {kind:8} ms p50 {t['p50_ms']:.1f}, p99 {t['p99_ms']:.1f},"
            f" max {t['max_ms']:.1f} ({t['count']} under load)"
        )
    quiet = found.get("without_callbacks")
    if quiet:
        each = ", ".join(
            f"{kind} {t['p50_ms']:.1f} / {t['p99_ms']:.1f}" for kind, t in quiet["lookups"].items()
        )
        lines.append(
            f"  without callbacks: ms p50 / p99 {each}; the hub's CPU"
            f" {quiet['hub_cpu_ms_per_request']:.1f} ms a request, {quiet['core_share']:.0%}"
            " of its core at this pace"
        )
    return lines


def _shared_index_lines(found: dict[str, Any] | None) -> list[str]:
    """The shared index step's lines (``bench/shared.py``)."""
    if not found:
        return []
    out = [
        f"Shared index (pipeline worker: journal → index → RabbitMQ, {found['events']:,} events,"
        f" median of {found['rounds']} rounds, alternated)"
    ]
    for mode, label in (("local", "local index alone"), ("shared", "with the shared index")):
        r = found[mode]
        rounds = " / ".join(f"{v:,.0f}" for v in r.get("rounds_eps", []))
        db = r.get("db_cpu_us_per_event")
        out.append(
            f"  {label:22} {r['eps']:>7,.0f} events/s, {r['cpu_us_per_event']:,.0f} µs CPU/event"
            + (f", PostgreSQL {db:,.0f} µs CPU/event" if db is not None else "")
            + f"  (rounds {rounds})"
        )
    each = " / ".join(f"{v:.2f}" for v in found.get("round_ratios", []) if v is not None)
    ratio, cpu = found.get("ratio"), found.get("cpu_ratio")
    out.append(
        f"  shared ÷ local  {ratio:.2f} (CPU {cpu:.2f}); each round {each}"
        if ratio is not None and cpu is not None
        else "  shared ÷ local  -"
    )
    return out


def _half_lines(results: Results) -> list[str]:
    """At half rate: each server's CPU per request against its own at full rate (the
    machine's share of that ratio: the references'), and what the hub's histograms saw."""
    lines = []
    for style in ("get", "post"):
        hub = get(results, "http", f"hub_{style}_half")
        if hub is None:
            continue
        cpu = {
            name: ratio(
                get(results, "http", f"{name}_{style}_half", "server_cpu_us_per_req"),
                get(results, "http", f"{name}_{style}", "server_cpu_us_per_req"),
            )
            for name in ("bare", "parse", "hub")
        }
        lines.append(
            f"Half rate, {style.upper()}: CPU µs/request at half ÷ at max: bare"
            f" {_fmt(cpu['bare'], '.2f')}, parse {_fmt(cpu['parse'], '.2f')}, hub"
            f" {_fmt(cpu['hub'], '.2f')}; the hub answered"
            f" {_fmt(hub.get('answered_within_10ms'), '.1%')} within 10 ms by its own clock;"
            f" commits over 25 / 50 ms: {_fmt(hub.get('commits_over_25ms'))} /"
            f" {_fmt(hub.get('commits_over_50ms'))} of {_fmt(hub.get('commits'))}"
        )
    return lines


def _round_lines(results: Results) -> list[str]:
    """The hub's rate against each reference's, round by round (``report.by_round``)."""
    found = by_round(results)
    if not found:
        return []
    lines = [
        "Round by round: hub + forwarder ÷ a reference, each round's two runs a minute apart at"
        " most (the table's ratios are of each server's median round)"
    ]
    for style, references in found.items():
        each = "; ".join(
            f"vs {reference} " + " / ".join(_fmt(r, ".2f") for r in pairs)
            for reference, pairs in references.items()
        )
        lines.append(f"  {style.upper():4} {each}")
    return lines
