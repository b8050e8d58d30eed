"""The benchmark's own pieces on fixed inputs: wrk's report read, targets and table computed, the
Lua script's requests distinct. No timing is asserted: speed is what the benchmark reports."""

from __future__ import annotations

import asyncio
import itertools
import random
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote_plus

import orjson
import pytest
from aiohttp import web

from bench import lookup as lookup_bench
from bench import pages as pages_bench
from bench import parse_speed, report, table, wrk
from bench.servers import GET, POST, paced
from tests.harness.rabbitmq import broker_required

WRK_REPORT = """\
Running 4s test @ http://127.0.0.1:41234
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.10ms  812.00us   1.02s    91.23%
    Req/Sec    30.12k     1.20k   32.00k    75.00%
  Latency Distribution
     50%    1.95ms
     75%    2.20ms
     90%  780.00us
     99%    12.50ms
  120480 requests in 4.00s, 17.12MB read
  Socket errors: connect 0, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 7
Requests/sec:  30119.87
Transfer/sec:      4.28MB
"""


def test_wrk_report_is_read():
    result = wrk.parse(WRK_REPORT)
    assert result.requests == 120480
    assert result.seconds == 4.0
    assert result.rps == 30119.87
    assert (result.p50_ms, result.p75_ms, result.p90_ms, result.p99_ms) == (1.95, 2.2, 0.78, 12.5)
    assert result.max_ms == 1020.0
    assert result.errors == 2 + 3 + 7


def test_wrk_report_without_errors_counts_none():
    clean = "\n".join(
        line for line in WRK_REPORT.splitlines() if "errors" not in line and "Non-2xx" not in line
    )
    assert wrk.parse(clean).errors == 0


def test_not_a_wrk_report_is_refused():
    with pytest.raises(ValueError, match="not a wrk --latency report"):
        wrk.parse("unable to connect to 127.0.0.1:1 Connection refused\n")


@pytest.mark.parametrize(
    ("text", "ms"),
    [("812.00us", 0.812), ("1.52ms", 1.52), ("2.00s", 2000.0), ("1.50m", 90000.0)],
)
def test_wrk_durations_in_milliseconds(text, ms):
    assert wrk.milliseconds(text) == pytest.approx(ms)


def test_wrk_command_is_one_pinned_thread_with_the_script_arguments(tmp_path):
    argv = wrk.command(
        "http://127.0.0.1:1",
        GET,
        tmp_path / "s.lua",
        prefix="bx",
        seconds=4,
        connections=64,
        pace_ms=15,
        cpu=1,
    )
    assert argv[:4] == ["taskset", "-c", "1", wrk.WRK]
    assert "-t1" in argv and "-c64" in argv and "-d4s" in argv and "--latency" in argv
    assert argv[argv.index("--") + 1 :] == ["GET", GET.path, GET.template, "bx", "", "15"]


def test_only_a_paced_script_has_a_delay_hook():
    assert "\nfunction delay()" not in wrk.script(paced=False)
    paced_script = wrk.script(paced=True)
    assert paced_script.endswith("\nfunction delay()\n  return math.random(0, 2 * pace_ms)\nend\n")


def test_templates_vary_the_message_id():
    assert GET.template.count("{id}") == 1 and "&id={id}&" in GET.template
    assert POST.template.count("{id}") == 1 and 'call_id="{id}"' in POST.template


def test_pacing_gives_about_the_rate_asked():
    connections, delay = paced(3000)
    assert delay == 15 and connections == 48  # 48 connections, one request per 16 ms each


def results() -> dict:
    def http(rps: float, p99: float = 5.0, cpu: float = 30.0) -> dict:
        return {"rps": rps, "p50_ms": 1.0, "p99_ms": p99, "server_cpu_us_per_req": cpu}

    return {
        "http": {
            "bare_get": http(30000),
            "bare_post": http(20000),
            "naive_get": http(3000),
            "naive_post": http(2000),
            "parse_get": http(20000, cpu=40),
            "parse_post": http(12000),
            "hub_get": http(16000, cpu=60),
            "hub_post": http(5000),
            "bare_get_half": http(15000, cpu=36.0),
            "parse_get_half": http(10000, cpu=50.0),
            "hub_get_half": {
                **http(8000, p99=4.0),
                "answered_within_10ms": 0.9931,
                "commits": 4000,
                "commits_over_25ms": 7,
                "commits_over_50ms": 2,
            },
            "hub_post_half": http(2500, p99=12.0, cpu=45.0),
        },
        "forwarder": {
            "eps": 9000,
            "ceiling_eps": 10000,
            "cpu_us_per_event": 100,
            "raw": [{"eps": 10000, "cpu_us_per_event": 90}],
            "window": 1024,
        },
        "memory": {
            "sustained": {
                "seconds": 300,
                "before_kib": 100_000,
                "after_kib": 112_000,
                "max_kib": 112_000,
                "journal_before_bytes": 0,
                "journal_after_bytes": 2**30,
            },
            "outage": {
                "seconds": 30,
                "before_kib": 112_000,
                "after_kib": 113_000,
                "max_kib": 113_000,
                "journal_before_bytes": 2**30,
                "journal_after_bytes": 2**31,
                "journal_growth_bytes": 2**30,
            },
        },
        "parsers": {
            "isendpro": {
                "samples": ["a", "b"],
                "events_per_request": 1.0,
                "us_per_request": 25.0,
                "parse_us_per_request": 20.0,
                "before_us_per_request": 52.0,
                "target_us_per_request": 26.0,
            },
            "dmc": {
                "samples": ["c"],
                "events_per_request": 1.5,
                "us_per_request": 90.0,
                "parse_us_per_request": 80.0,
                "before_us_per_request": 150.0,
                "target_us_per_request": 75.0,
            },
        },
        "lookup": {
            "events": 1_000_000,
            "index_events_per_second": 12000,
            "index_bytes": 300 * 2**20,
            "journal_bytes": 900 * 2**20,
            "lookups": {
                "timeline": {
                    "count": 300,
                    "p50_ms": 1.5,
                    "p99_ms": 12.5,
                    "max_ms": 20.0,
                    "cpu_p99_ms": 3.0,
                },
                "phone": {"count": 300, "p50_ms": 30.0, "p99_ms": 250.0, "max_ms": 300.0},
                "index_only": {
                    "timeline": {"count": 300, "p50_ms": 0.5, "p99_ms": 2.0, "max_ms": 3.0},
                },
            },
            "pages": {
                "events": {"count": 100, "p50_ms": 40.0, "p99_ms": 90.0, "max_ms": 95.0},
                "overview": {"count": 100, "p50_ms": 300.0, "p99_ms": 1200.0, "max_ms": 1500.0},
                "slowest_p99_ms": 1200.0,
            },
        },
        "disk": {
            "before half rate": {
                "syncs": 9000,
                "p50_ms": 0.28,
                "p99_ms": 0.61,
                "p99.9_ms": 3.2,
                "max_ms": 251.0,
            }
        },
    }


def test_targets_are_ratios_to_the_references_of_the_same_run():
    found = {t.name: t for t in report.targets(results())}
    assert found["ingest_get"].value == pytest.approx(16000 / 30000)
    assert found["ingest_post"].value == pytest.approx(5000 / 20000)
    assert found["cpu_half_get"].value == pytest.approx(30 / 60)
    assert found["cpu_half_post"].value == pytest.approx(45 / 30)
    assert found["vs_naive_get"].value == pytest.approx(16000 / 3000)
    assert found["forwarder"].value == pytest.approx(0.9)
    assert found["rss_flat"].value == pytest.approx(0.12)
    verdicts = {name: t.verdict for name, t in found.items()}
    assert verdicts == {
        "ingest_get": "PASS",
        "ingest_post": "MISS",
        "vs_naive_get": "PASS",
        "vs_naive_post": "MISS",
        "p99_half_get": "PASS",
        "p99_half_post": "MISS",
        "cpu_half_get": "PASS",
        "cpu_half_post": "MISS",
        "forwarder": "PASS",
        "rss_flat": "MISS",
        "outage_rss": "PASS",
        "parse_isendpro": "PASS",
        "parse_dmc": "MISS",
        "lookup_timeline": "PASS",
        "lookup_phone": "MISS",
        "console_pages": "MISS",
        "lookup_under_load": "n/a",  # the callbacks under lookups: test_bench_contention.py
        "timeline_under_load": "n/a",
        "phone_under_load": "n/a",
        "pages_under_load": "n/a",
    }
    assert found["lookup_phone"].value == 250.0
    assert found["console_pages"].value == 1200.0 and found["console_pages"].limit == 1000.0
    assert found["parse_dmc"].value == pytest.approx(90 / 150)


def test_ingest_is_compared_with_parse_and_answer():
    found = report.versus_parse(results())
    assert found["hub_get"] == {"rps": pytest.approx(0.8), "cpu": pytest.approx(40 / 60)}
    assert found["hub_post"]["rps"] == pytest.approx(5000 / 12000)
    assert "journal_get" not in found  # that step did not run


def test_the_hub_is_read_against_each_reference_round_by_round():
    found = results()
    found["http"]["hub_get"]["rounds_rps"] = [16000, 8000, 12000]
    found["http"]["bare_get"]["rounds_rps"] = [32000, 20000, 30000]
    found["http"]["naive_get"]["rounds_rps"] = [4000, 2000]  # not one for one: which rounds?
    found["http"]["parse_get"]["rounds_rps"] = [20000, 0, 15000]  # a round of nothing: None
    paired = report.by_round(found)
    assert paired == {
        "get": {"bare": pytest.approx([0.5, 0.4, 0.4]), "parse": [pytest.approx(0.8), None, 0.8]}
    }
    text = table.table(found)
    assert "  GET  vs bare 0.50 / 0.40 / 0.40; vs parse 0.80 / - / 0.80" in text
    assert "Round by round" not in table.table(results())  # no rounds recorded: no such lines


def test_a_step_that_did_not_run_is_not_a_verdict():
    partial = results()
    del partial["http"]["naive_get"], partial["forwarder"]
    found = {t.name: t.verdict for t in report.targets(partial)}
    assert found["vs_naive_get"] == "n/a" and found["forwarder"] == "n/a"


def test_table_shows_figures_ratios_and_verdicts():
    text = table.table(results())
    hub_get = next(line for line in text.splitlines() if "hub + forwarder, GET (iSendPro)" in line)
    assert "16,000" in hub_get and "53%" in hub_get and "50%" in hub_get and "5.3" in hub_get
    half = next(line for line in text.splitlines() if "forwarder, GET, at half max" in line)
    assert half.split()[-3:] == ["-", "100%", "-"]  # a chosen rate: only the CPU ratio
    assert "PASS  ingest_get" in text and "MISS  ingest_post" in text
    assert "forwarder 9,000 events/s" in text and "90% of the best" in text
    assert "RSS 97.7 → 109.4 MiB" in text
    assert "fsync of a 4 KiB append (before half rate): p50 0.28 ms, p99 0.61" in text
    assert "max 251.0 (9000 syncs)" in text
    assert (
        "Half rate, GET: CPU µs/request at half ÷ at max: bare 1.20, parse 1.25, hub 0.50;"
        " the hub answered 99.3% within 10 ms by its own clock; commits over 25 / 50 ms: 7 / 2"
        " of 4,000" in text
    )
    assert "Half rate, POST: CPU µs/request at half ÷ at max: bare -, parse -, hub 1.50" in text
    parse = next(line for line in text.splitlines() if "parse and answer, GET" in line)
    assert "20,000" in parse and "67%" in parse  # vs bare: 20,000 / 30,000
    ingest = text.splitlines().index(
        "Ingest / parse and answer (req/s ratio, CPU ratio in brackets)"
    )
    assert text.splitlines()[ingest + 1].split()[-2:] == ["80%", "(67%)"]
    isendpro = next(line for line in text.splitlines() if line.strip().startswith("isendpro"))
    assert isendpro.split()[:6] == ["isendpro", "25.0", "20.0", "before", "52.0", "->"]
    assert "PASS  parse_isendpro" in text and "MISS  parse_dmc" in text
    assert "Read model (1,000,000 events indexed at 12,000 events/s; index 300 MiB" in text
    timeline = next(line for line in text.splitlines() if line.strip().startswith("timeline"))
    expected = "timeline 1.50 12.50 20.00 3.00 (index 0.50 / 2.00)"
    assert timeline.split() == expected.split()
    overview = next(line for line in text.splitlines() if line.strip().startswith("overview"))
    assert overview.split() == ["overview", "300.00", "1200.00", "1500.00"]
    assert "MISS  console_pages" in text
    phone = next(line for line in text.splitlines() if line.strip().startswith("phone"))
    assert phone.split() == ["phone", "30.00", "250.00", "300.00", "-"]


def test_fsync_latency_is_measured_in_the_directory_given(tmp_path):
    from bench import procs

    figures = procs.fsync_latency(tmp_path, 0.2)
    assert figures["syncs"] > 0
    assert 0 < figures["p50_ms"] <= figures["p99_ms"] <= figures["p99.9_ms"] <= figures["max_ms"]
    assert not list(tmp_path.iterdir())  # the probe file is gone


def test_results_file_carries_the_verdicts(tmp_path):
    path = report.write(results(), tmp_path, now=lambda: datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert path == tmp_path / "20260102T030405Z.json"
    doc = orjson.loads(path.read_bytes())
    assert {t["name"]: t["verdict"] for t in doc["targets"]}["ingest_get"] == "PASS"
    assert doc["http"]["bare_get"]["rps"] == 30000
    assert doc["by_round"] == {}  # no rounds recorded in these results


def test_median_run_keeps_every_rate():
    runs = [{"rps": 3.0, "p99_ms": 1}, {"rps": 1.0, "p99_ms": 2}, {"rps": 2.0, "p99_ms": 3}]
    assert report.median_run(runs) == {"rps": 2.0, "p99_ms": 3, "rounds_rps": [3.0, 1.0, 2.0]}
    assert report.median_run(runs[:2])["rps"] == 1.0


def test_outcomes_are_summed_across_labels():
    exposition = "\n".join(
        [
            "# TYPE hub_callbacks_total counter",
            'hub_callbacks_total{provider="isendpro",endpoint="delivery",outcome="accepted",reason=""} 10.0',
            'hub_callbacks_total{provider="dmc",endpoint="cra",outcome="accepted",reason=""} 5.0',
            'hub_callbacks_total{provider="dmc",endpoint="cra",outcome="rejected",reason="invalid_xml"} 1.0',
            'hub_callbacks_created{provider="dmc",endpoint="cra",outcome="accepted",reason=""} 1.7e9',
        ]
    )
    assert report.outcomes(exposition) == {"accepted": 15.0, "rejected": 1.0}


def test_histograms_are_read_by_bound_across_labels():
    exposition = "\n".join(
        [
            'hub_x_seconds_bucket{endpoint="delivery",le="0.01",provider="isendpro"} 3.0',
            'hub_x_seconds_bucket{endpoint="cra",le="0.01",provider="dmc"} 2.0',
            'hub_x_seconds_bucket{endpoint="cra",le="+Inf",provider="dmc"} 4.0',
            'hub_x_seconds_bucket{le="0.01"} 1.0',
            'hub_x_seconds_count{endpoint="cra",provider="dmc"} 4.0',
            'hub_x_seconds_other_bucket{le="0.01"} 9.0',
        ]
    )
    assert report.buckets(exposition, "hub_x_seconds") == {"0.01": 6.0, "+Inf": 4.0}


def test_half_rate_tails_count_what_came_between_two_readings():
    from bench.run import _tails

    latency, commits = "hub_callback_duration_seconds", "hub_journal_commit_duration_seconds"
    before = {latency: {"0.01": 90.0, "+Inf": 100.0}, commits: {"0.025": 9, "0.05": 10, "+Inf": 10}}
    after = {
        latency: {"0.01": 1070.0, "+Inf": 1100.0},
        commits: {"0.025": 300.0, "0.05": 308.0, "+Inf": 310.0},
    }
    assert _tails(before, after) == {
        "answered_within_10ms": 0.98,
        "commits": 300,
        "commits_over_25ms": 9,
        "commits_over_50ms": 2,
    }
    assert _tails({}, {}) == {}  # a reference: no histograms


# -- the Lua script against a real server, for one second ---------------------------------------


@pytest.fixture
def wrk_installed() -> None:
    """wrk is a Debian package that ``make test`` installs: in CI its absence is a failure."""
    if not Path(wrk.WRK).exists():
        if broker_required():
            pytest.fail(f"{wrk.WRK} is missing (make system-packages installs it)")
        pytest.skip(f"{wrk.WRK} is not installed")


async def _wrk_on(
    aiohttp_server, tmp_path: Path, load: wrk.Load, handler, **options
) -> wrk.WrkResult:
    """A wrk run of ``load`` (``options``: ``wrk.run``'s; 4 connections unless given) against a
    test server answering its path with ``handler``."""
    app = web.Application()
    app.router.add_route(load.method, load.path, handler)
    server = await aiohttp_server(app)
    options.setdefault("connections", 4)
    url = f"http://127.0.0.1:{server.port}"
    return await asyncio.to_thread(wrk.run, url, load, tmp_path, **options)


@pytest.mark.usefixtures("wrk_installed")
@pytest.mark.parametrize("load", [GET, POST], ids=["get", "post"])
async def test_every_request_of_a_wrk_run_is_distinct(aiohttp_server, tmp_path: Path, load):
    seen: list[bytes] = []

    async def record(request: web.Request) -> web.Response:
        if request.method == "GET":
            seen.append(request.raw_path.partition("?")[2].encode())
        else:
            seen.append(await request.read())
        return web.Response(text="validation")

    result = await _wrk_on(aiohttp_server, tmp_path, load, record, prefix="btest", seconds=1)
    assert result.requests > 0 and result.errors == 0
    assert len(seen) >= result.requests
    assert len(set(seen)) == len(seen)
    head, _, tail = load.template.partition("{id}")
    counters = [s.decode().removeprefix(head).removesuffix(tail) for s in seen]
    assert all(c.startswith("btestt1n") and c[len("btestt1n") :].isdigit() for c in counters)


@pytest.mark.usefixtures("wrk_installed")
async def test_a_paced_connection_waits_a_random_delay(aiohttp_server, tmp_path: Path):
    """One connection, 10 ms on average between an answer and the next request: the gaps
    spread over 0 to 20 ms (a fixed delay would keep them within the answer's jitter)."""
    arrivals: list[float] = []

    async def record(request: web.Request) -> web.Response:
        arrivals.append(time.monotonic())
        return web.Response(text="validation")

    result = await _wrk_on(
        aiohttp_server, tmp_path, GET, record, prefix="bpace", seconds=2, connections=1, pace_ms=10
    )
    assert result.errors == 0 and len(arrivals) > 40
    gaps = sorted(b - a for a, b in itertools.pairwise(arrivals))
    quartile = len(gaps) // 4
    assert gaps[3 * quartile] - gaps[quartile] > 0.004  # a uniform 0-20 ms: about 0.010


async def test_parse_and_answer_gives_the_providers_answers(aiohttp_client):
    """The ``parse`` reference parses and answers as the hub would, journal aside."""
    from bench import refs

    client = await aiohttp_client(refs.parse_app())
    get = await client.get(f"{GET.path}?{GET.template.replace('{id}', '1')}")
    assert (get.status, await get.text()) == (200, "validation")
    post = await client.post(
        POST.path,
        data=POST.template.replace("{id}", "2").encode(),
        headers={"Content-Type": POST.content_type},
    )
    assert (post.status, await post.text()) == (200, "OK")
    bad = await client.get(f"{GET.path}?nothing=here")
    assert (bad.status, await bad.text()) == (200, "probleme")


def test_the_lookup_step_indexes_and_looks_up(tmp_path):
    """``bench/lookup.py`` on a small index: every lookup it times finds what it looks for."""
    filled = lookup_bench.fill(tmp_path, 3000)
    assert filled["events"] == 3000 and filled["duplicates"] > 0
    assert filled["index_bytes"] > 0 and filled["journal_bytes"] > filled["index_bytes"]
    found = lookup_bench.lookups(tmp_path, 5, filled["messages"], random.Random(1))  # noqa: S311
    assert {"timeline", "phone", "state_failed", "index_only"} <= set(found)
    assert all(t["count"] == 5 for t in (found["timeline"], found["phone"]))
    assert found["phone_page_items"] > 0
    assert lookup_bench.national("+33612345678") == "06 12 34 56 78"
    assert lookup_bench.national("+41791234567") == "0041791234567"


def test_the_lookup_step_loads_the_console_s_pages(tmp_path):
    """The pages the lookup step times are the hub's own, answered whole on its index (an events
    page showing no event is an error of the step, not a fast page)."""
    filled = lookup_bench.fill(tmp_path, 3000)
    _, ids, numbers = lookup_bench.picks(4, filled["messages"], random.Random(2))  # noqa: S311
    addresses = pages_bench.paths(ids, numbers, 4)
    assert addresses["events_phone"][1] == f"/console/events?phone={quote_plus(numbers[1])}"
    found = pages_bench.timed_pages(tmp_path, addresses)
    assert set(found) == {"events", "events_phone", "message", "overview", "slowest_p99_ms"}
    assert all(found[name]["count"] == 4 for name in addresses)
    assert found["slowest_p99_ms"] == max(found[name]["p99_ms"] for name in addresses) > 0
    with pytest.raises(RuntimeError, match="HTTP 404"):
        pages_bench.timed_pages(tmp_path, {"message": ["/console/messages/dmc/nothing"]})


# -- the parse path before issue 16, measured beside this code ----------------------------------


def test_runs_combine_into_medians_with_the_code_before_measured_beside():
    def run(dmc: float, parse: float) -> dict:
        return {
            "dmc": {"samples": ["seed-x"], "us_per_request": dmc, "parse_us_per_request": parse}
        }

    mine = [run(90.0, 60.0), run(70.0, 50.0), run(80.0, 55.0)]
    before = [run(150.0, 0), run(170.0, 0), run(160.0, 0)]
    found = parse_speed.combine(mine, before)["dmc"]
    assert found["us_per_request"] == 80.0 and found["parse_us_per_request"] == 55.0
    assert found["runs_us_per_request"] == [90.0, 70.0, 80.0]
    assert found["before_us_per_request"] == 160.0 and found["target_us_per_request"] == 80.0
    assert found["before"] == "measured, the code of 72205e4"
    recorded = parse_speed.combine(mine, [])["dmc"]  # no history: the recorded figure
    assert recorded["before_us_per_request"] == parse_speed.BEFORE["dmc"]
    assert recorded["before"] == "recorded (BEFORE)"


def test_the_code_before_comes_from_the_history_and_runs_with_this_script(tmp_path):
    found = subprocess.run(
        [
            "git",
            "-C",
            str(parse_speed.REPOSITORY),
            "cat-file",
            "-e",
            f"{parse_speed.BEFORE_COMMIT}^{{commit}}",
        ],
        capture_output=True,
        check=False,
    )
    if found.returncode != 0:  # an archive, a shallow clone: the bench says it and falls back
        pytest.skip(f"{parse_speed.BEFORE_COMMIT} is not in this checkout's history")
    tree = parse_speed.before_tree(tmp_path / "before")
    assert tree is not None
    assert (tree / "bench" / "parse_speed.py").read_bytes() == Path(
        parse_speed.__file__
    ).read_bytes()
    imported = subprocess.run(
        [sys.executable, "-c", "import core.models, parsers; print(core.models.__file__)"],
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(imported).is_relative_to(tree)  # the old code, not this checkout's
    assert "class Event(BaseModel):" in Path(imported).read_text()  # pydantic: before issue 16
    measured = subprocess.run(
        [sys.executable, "-m", "bench.parse_speed", "0.05"],
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    figures = orjson.loads(measured.stdout)
    assert set(figures) == {"dmc", "ecall", "ecampaign", "isendpro", "smsmode"}
    assert all(f["us_per_request"] > 0 for f in figures.values())


def test_without_the_history_there_is_no_code_before(tmp_path):
    assert parse_speed.before_tree(tmp_path / "before", repository=tmp_path) is None
