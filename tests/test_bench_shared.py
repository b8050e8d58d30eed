"""The shared index step's pieces (``bench/shared.py``): its summary and table lines from given
runs, the checks that stop a run that did not do the work, and the whole step once, short, on a
real RabbitMQ and PostgreSQL. No timing is asserted: speed is what the benchmark reports."""

from __future__ import annotations

import pytest

from bench import shared, table
from bench.servers import Config
from sinks import index
from sinks import journal as store
from tests.harness.postgres import PostgresServer
from tests.harness.rabbitmq import RabbitNode


def run(eps: float, cpu: float, **more: float) -> dict:
    return {"backlog": 1000, "events": 900, "eps": eps, "cpu_us_per_event": cpu,
            "duplicates": 10, **more}  # fmt: skip


def runs() -> dict[str, list[dict]]:
    """Three rounds of each mode (the shared index's second a noisy one)."""
    return {
        "local": [run(5000, 180), run(5200, 175), run(4800, 185)],
        "shared": [
            run(4000, 230, recorded=1000, db_cpu_us_per_event=60),
            run(3000, 240, recorded=1000, db_cpu_us_per_event=70),
            run(4100, 225, recorded=1000, db_cpu_us_per_event=65),
        ],
    }


def test_the_summary_keeps_each_mode_s_median_round_and_their_ratio():
    found = shared.summary(runs(), 1000)
    assert (found["local"]["eps"], found["shared"]["eps"]) == (5000, 4000)
    assert found["local"]["rounds_eps"] == [5000, 5200, 4800]
    assert "rps" not in found["local"] and "rounds_rps" not in found["shared"]
    assert found["ratio"] == pytest.approx(4000 / 5000)
    assert found["cpu_ratio"] == pytest.approx(180 / 230)  # the median rounds' CPU per event
    assert found["round_ratios"] == pytest.approx([4000 / 5000, 3000 / 5200, 4100 / 4800])
    assert found["shared"]["db_cpu_us_per_event"] == 60
    assert (found["events"], found["rounds"]) == (1000, 3)


def test_the_table_shows_both_modes_and_the_ratio():
    text = table.table({"shared_index": shared.summary(runs(), 1000)})
    assert "HTTP (wrk" not in text  # no HTTP step ran
    local = next(line for line in text.splitlines() if "local index alone" in line)
    assert "5,000 events/s, 180 µs CPU/event  (rounds 5,000 / 5,200 / 4,800)" in local
    with_it = next(line for line in text.splitlines() if "with the shared index" in line)
    assert "4,000 events/s, 230 µs CPU/event, PostgreSQL 60 µs CPU/event" in with_it
    assert "shared ÷ local  0.80 (CPU 0.78); each round 0.80 / 0.58 / 0.85" in text


def test_rounds_alternate_which_mode_goes_first():
    assert [shared.order(r) for r in range(3)] == [
        ("local", "shared"),
        ("shared", "local"),
        ("local", "shared"),
    ]


@pytest.mark.parametrize(
    ("local", "with_it", "error"),
    [
        (run(1, 1, events=0), run(1, 1, recorded=1000), "local: the worker processed nothing"),
        (run(1, 1), run(1, 1, duplicates=11, recorded=1000), "duplicates: 10 with the local"),
        (run(1, 1), run(1, 1, recorded=999), "holds 999 of 1000 events"),
    ],
)
def test_a_run_that_did_not_do_the_work_is_no_measure(local, with_it, error):
    with pytest.raises(RuntimeError, match=error):
        shared.check(local, with_it)


def test_the_journal_holds_the_events_and_nothing_is_indexed(tmp_path):
    shared.journal_only(tmp_path, 700)
    rows = store.select(tmp_path / store.JOURNAL_FILE, after=0, limit=1000)
    assert len(rows) == 700 and len({r.envelope.id for r in rows}) < 700  # retries among them
    assert not (tmp_path / index.INDEX_FILE).exists()


def test_the_step_runs_on_a_real_broker_and_postgresql(
    tmp_path, rabbit: RabbitNode, postgres: PostgresServer
):
    """The whole step, short, no pinning: the worker drains the journal in both modes, the
    database holds every event, both modes find the same duplicates (``check``)."""
    config = Config(
        seconds=1, rounds=1, sustained=1, outage=1, connections=4, server_cpu=None,
        client_cpu=None, raw_count=1, raw_window=1, parser_seconds=0.1, workdir=tmp_path,
    )  # fmt: skip
    found = shared.measure(config, rabbit.url, postgres, events=3000, rounds=1)
    for mode in shared.MODES:
        assert found[mode]["backlog"] == 3000 and found[mode]["events"] > 0
        assert found[mode]["eps"] > 0 and found[mode]["cpu_us_per_event"] > 0
    assert found["shared"]["recorded"] == 3000 and found["local"]["duplicates"] > 0
    assert found["ratio"] is not None and found["shared"]["db_cpu_us_per_event"] > 0
    assert not (tmp_path / "shared-index").exists()  # the step's files are gone
