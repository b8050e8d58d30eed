"""The callbacks-under-lookups step's pieces (``bench/contention.py``): its summary, targets and
table lines from given runs, the operator's requests and their checks, its client process, and
the whole step once, short, against a real hub. No timing is asserted."""

from __future__ import annotations

import asyncio
import random
import secrets
import subprocess
import threading
from urllib.parse import quote_plus

import orjson
import pytest

from bench import contention, report, table
from bench import lookup as lookup_bench
from bench.run import Run
from bench.servers import Config
from hub.app import create_app
from hub.settings import Settings
from tests.test_bench import wrk_installed  # noqa: F401 - the fixture


def under_load() -> dict:
    """The step's summary of given runs: three rounds alone and with lookups (the second alone
    a noisy one), the lookups' timings."""

    def run(rps: float, cpu: float, noise: float = 0.05) -> dict:
        return {"rps": rps, "p99_ms": 40.0, "server_cpu_us_per_req": cpu, "foreign_cores": noise}

    alone = [run(2500, 380), run(2000, 400, noise=0.6), run(2400, 385)]
    loaded = [run(2300, 390), run(2200, 395), run(2100, 400)]
    took = [("timeline", 10.0)] * 98 + [("timeline", 60.0)] * 2
    took += [("phone", 20.0)] * 50 + [("page", 80.0)] * 10
    quiet = ({"seconds": 10, "hub_cpu_seconds": 0.5}, [("timeline", 4.0), ("phone", 6.0)] * 25)
    return contention.summary(alone, loaded, took, seconds=10, rate=5, quiet=quiet)


def test_under_load_keeps_the_median_rounds_and_their_ratio():
    found = under_load()
    assert (found["alone"]["rps"], found["with_lookups"]["rps"]) == (2400, 2200)
    assert found["ratio"] == pytest.approx(2200 / 2400)
    assert found["cpu_ratio"] == pytest.approx(385 / 395)  # the median rounds' CPU per callback
    assert found["round_ratios"] == pytest.approx([2300 / 2500, 2200 / 2000, 2100 / 2400])
    assert found["lookups"]["timeline"] == {
        "count": 100,
        "p50_ms": 10.0,
        "p99_ms": 60.0,
        "max_ms": 60.0,
    }
    assert found["lookups"]["page"]["count"] == 10
    alone = found["without_callbacks"]
    assert alone["hub_cpu_ms_per_request"] == 10.0  # 0.5 s of CPU for 50 requests
    assert alone["core_share"] == 0.05  # 5 requests/s at 10 ms each
    assert alone["lookups"]["phone"] == {"count": 25, "p50_ms": 6.0, "p99_ms": 6.0, "max_ms": 6.0}
    verdicts = {t.name: t.verdict for t in report.under_load({"under_load": found})}
    assert verdicts == {
        "lookup_under_load": "PASS",  # 0.92 >= 0.9
        "timeline_under_load": "MISS",  # 60 ms > 50
        "phone_under_load": "PASS",
        "pages_under_load": "PASS",
    }


def test_the_table_shows_both_runs_their_ratio_and_the_lookups():
    text = table.table({"under_load": under_load()})
    alone = next(line for line in text.splitlines() if line.strip().startswith("alone"))
    assert "2,400 req/s" in alone and "385 µs/req" in alone
    assert "(rounds 2,500 / 2,000 / 2,400)" in alone
    assert "with ÷ alone  0.92 (CPU 0.97); each round 0.92 / 1.10 / 0.88" in text
    assert "lookups, timeline ms p50 10.0, p99 60.0, max 60.0 (100 under load)" in text
    assert "PASS  lookup_under_load" in text and "MISS  timeline_under_load" in text
    quiet = next(line for line in text.splitlines() if "without callbacks" in line)
    assert "timeline 4.0 / 4.0, phone 6.0 / 6.0" in quiet
    assert "the hub's CPU 10.0 ms a request, 5% of its core" in quiet


def test_callbacks_slowed_by_lookups_miss_their_target():
    def run(rps: float) -> dict:
        return {"rps": rps, "server_cpu_us_per_req": 400.0}

    slowed = contention.summary([run(2500)], [run(2000)], [("phone", 5.0)], seconds=3, rate=5)
    found = {t.name: t for t in report.targets({"under_load": slowed})}
    assert found["lookup_under_load"].value == pytest.approx(0.8)
    assert found["lookup_under_load"].verdict == "MISS"
    assert found["lookup_under_load"].limit == report.UNDER_LOAD_RATIO
    assert found["phone_under_load"].verdict == "PASS"
    assert found["timeline_under_load"].verdict == "n/a"  # no timeline was timed


def test_rounds_alternate_which_run_goes_first():
    assert [contention.order(r) for r in range(3)] == [
        ("alone", "with"),
        ("with", "alone"),
        ("alone", "with"),
    ]


def test_the_operator_asks_a_timeline_a_phone_search_and_each_page_in_turn():
    made = contention.plan(1000, 4, random.Random(3))  # noqa: S311
    _, ids, numbers = lookup_bench.picks(4, 1000, random.Random(3))  # noqa: S311
    assert [kind for kind, _ in made] == list(contention.KINDS) * 4
    assert made[0][1] == f"/api/v1/messages/{ids[0][0]}/{ids[0][1]}"
    assert made[1][1] == f"/api/v1/events?phone={quote_plus(numbers[0])}"
    assert [path.partition("?")[0] for _, path in made[2::3]] == [
        "/console/events",
        "/console/events",
        f"/console/messages/{ids[2][0]}/{ids[2][1]}",
        "/console/overview",
    ]
    assert made[5][1] == f"/console/events?phone={quote_plus(numbers[1])}"


@pytest.mark.parametrize(
    ("path", "status", "body", "error"),
    [
        ("/api/v1/messages/dmc/m1", 503, b"{}", "HTTP 503"),
        ("/api/v1/events?phone=0600000001", 200, b'{"items":[],"next":null}', "no event"),
        ("/console/events?phone=0600000001", 200, b"<table></table>", "no event"),
    ],
)
def test_an_answer_that_is_no_measure_stops_the_step(path, status, body, error):
    with pytest.raises(RuntimeError, match=error):
        contention.check(path, status, body)


def test_answers_with_events_are_measures():
    contention.check("/api/v1/events?phone=1", 200, b'{"items":[{"seq":1}]}')
    contention.check("/console/events", 200, b'<tr data-seq="1">')
    contention.check("/console/overview", 200, b"<html></html>")


def test_the_operator_client_needs_the_hub_s_token(tmp_path):
    """The client run as the step runs it, on a data directory no hub has run on."""
    done = subprocess.run(
        [*contention.CLIENT, "http://127.0.0.1:9", str(tmp_path), "--rate", "2"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "no console-token in" in done.stderr and "Traceback" not in done.stderr


async def test_the_operator_s_requests_are_answered_by_the_hub(aiohttp_server, tmp_path):
    """The client's requests against the hub itself on a small index: every kind answered
    with what it looks for, and its timings one per request, in the plan's order."""
    filled = await asyncio.to_thread(lookup_bench.fill, tmp_path, 3000)  # it runs a loop
    token = secrets.token_urlsafe(24)
    settings = Settings(data_dir=tmp_path, forwarder="inline", console_token=token)
    server = await aiohttp_server(create_app(settings))
    made = contention.plan(filled["messages"], 4, random.Random(5))  # noqa: S311
    took = await asyncio.to_thread(
        contention.operate,
        f"http://127.0.0.1:{server.port}",
        token,
        made,
        1000.0,  # no pacing to speak of
        threading.Event(),
        limit=len(made),
    )
    assert [kind for kind, _ in took] == [kind for kind, _ in made]
    assert all(ms > 0 for _, ms in took)
    nobody = [("phone", "/api/v1/events?phone=06+99+99+99+99")]  # no event has this number
    with pytest.raises(RuntimeError, match="no event found"):
        await asyncio.to_thread(
            contention.operate, f"http://127.0.0.1:{server.port}", token, nobody, 1000.0,
            threading.Event(), limit=1,
        )  # fmt: skip


@pytest.mark.usefixtures("wrk_installed")
def test_the_under_load_step_runs_against_a_real_hub(tmp_path):
    """The whole step, short: ``hub serve`` on a small index, wrk alone and with the operator
    client (its process), no pinning; what it measures is the benchmark's, not asserted."""
    data_dir = tmp_path / "lookup"
    data_dir.mkdir()
    (data_dir / "filled.json").write_bytes(orjson.dumps(lookup_bench.fill(data_dir, 3000)))
    config = Config(
        seconds=1, rounds=1, sustained=1, outage=1, connections=4, server_cpu=None,
        client_cpu=None, raw_count=1, raw_window=1, parser_seconds=0.1, workdir=tmp_path,
    )  # fmt: skip
    run = Run(config)
    found = contention.measure(run, data_dir, seconds=1, rounds=1, rate=10)
    assert found["alone"]["rps"] > 0 and found["with_lookups"]["rps"] > 0
    assert found["with_lookups"]["lookups"] == sum(t["count"] for t in found["lookups"].values())
    assert set(found["lookups"]) <= set(contention.KINDS) and found["lookups"]["timeline"]
    assert run.results["hub_outcomes"]["under-load_get"]["accepted"] > 0
    assert found["without_callbacks"]["lookups"]["timeline"]["count"] > 0
