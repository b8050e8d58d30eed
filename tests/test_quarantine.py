"""The quarantine does not only grow (issue 15, item 4): ``hub quarantine drop`` and ``purge``,
the retention of replayed requests, and ``hub_quarantine_requests`` counting what still waits."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
import urllib.request
from functools import partial
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from core.models import Provider
from hub import quarantine
from hub.app import create_app
from parsers import REGISTRY
from sinks import journal as store
from sinks.journal import Journal, QuarantineEntry
from sinks.metrics import Metrics
from tests.harness.hubproc import HubProcess
from tests.support import DLR, dlr_query, eventually, get_raw, make_settings, metric

BAD = f"{DLR}?statut=0&tel=0612345678&date=never&heure=10:00:00"
"""An iSendPro delivery report whose date no parser reads: refused, quarantined."""


def entry(n: int) -> QuarantineEntry:
    return QuarantineEntry(
        received_at="2024-05-01T08:00:00+00:00",
        provider="isendpro",
        callback="delivery",
        method="GET",
        reason="bad_timestamp",
        content_type="",
        headers="{}",
        query=f"id={n}&date=never".encode(),
        body=b"",
    )


async def kept(data_dir: Path, *, replayed_at: list[float | None]) -> list[int]:
    """A journal in ``data_dir`` with one quarantined request per item, replayed at that time
    (None: waiting); their numbers."""
    journal = Journal.open(data_dir)
    try:
        numbers = [await journal.quarantine(entry(i)) for i in range(len(replayed_at))]
        for number, at in zip(numbers, replayed_at, strict=True):
            if at is not None:
                await journal.mark_replayed(number, at)
    finally:
        journal.close()
    return numbers


def listed(data_dir: Path) -> dict[int, float | None]:
    """Number -> replay time of every request in the quarantine."""
    path = data_dir / store.JOURNAL_FILE
    return {q.seq: q.replayed_at for q in store.quarantined(path, include_replayed=True)}


def hub_cli(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env["HUB_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "-m", "hub", "quarantine", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


# -- hub_quarantine_requests: what waits, read at each scrape ---------------------------------


async def test_replayed_requests_leave_the_metric(aiohttp_client, tmp_path, monkeypatch) -> None:
    """Two refused requests wait; once one replays (from a journal of its own, as the command
    does), the running hub's metric says 1, not 2."""

    def crashing(request):
        raise IndexError("a parser's bug")

    settings = make_settings(tmp_path / "data")
    real = REGISTRY[Provider.ISENDPRO].parse
    monkeypatch.setattr(REGISTRY[Provider.ISENDPRO], "parse", crashing)
    client = await aiohttp_client(create_app(settings))
    for n in (1, 2):
        assert await (await get_raw(client, f"{DLR}?{dlr_query(n)}")).read() == b"probleme"
    text = await (await client.get("/metrics")).text()
    assert metric(text, "hub_quarantine_requests") == 2

    monkeypatch.setattr(REGISTRY[Provider.ISENDPRO], "parse", real)  # the parser is fixed
    first = min(listed(settings.data_dir))
    [outcome] = await quarantine.replay(settings, [first])
    assert (outcome.events, outcome.refused) == (1, None)
    text = await (await client.get("/metrics")).text()
    assert metric(text, "hub_quarantine_requests") == 1
    assert len(listed(settings.data_dir)) == 2  # the replayed one is still there, marked


def test_drop_beside_a_running_hub_empties_its_metric(tmp_path) -> None:
    """What the pipeline dashboard's quarantine stat shows goes back to 0 once the operator has
    dropped what no parser will ever read, while the hub runs (its writer holds the journal)."""
    data_dir = tmp_path / "data"
    with HubProcess(data_dir) as hub:
        for _ in range(2):
            with urllib.request.urlopen(hub.url + BAD, timeout=10) as resp:
                assert resp.read() == b"probleme"

        def waiting() -> float | None:
            with urllib.request.urlopen(hub.url + "/metrics", timeout=10) as resp:
                return metric(resp.read().decode(), "hub_quarantine_requests")

        assert waiting() == 2
        first, second = sorted(listed(data_dir))
        done = hub_cli("drop", str(first), str(second), data_dir=data_dir)
        assert (done.returncode, done.stdout) == (0, f"#{first}: dropped\n#{second}: dropped\n")
        assert waiting() == 0
        with urllib.request.urlopen(hub.url + BAD, timeout=10) as resp:  # the hub still writes
            assert resp.read() == b"probleme"
        assert waiting() == 1
        assert hub.terminate() == 0, hub.log_tail()


# -- the commands ---------------------------------------------------------------------------


async def test_drop_says_which_numbers_it_did_not_find(tmp_path) -> None:
    data_dir = tmp_path / "data"
    waiting, replayed = await kept(data_dir, replayed_at=[None, time.time()])
    done = hub_cli("drop", str(replayed), "999", data_dir=data_dir)
    assert done.returncode == 1
    assert done.stdout == f"#{replayed}: dropped\n"
    assert done.stderr == "no quarantined request #999\n"
    assert list(listed(data_dir)) == [waiting]


async def test_purge_drops_replayed_requests_and_keeps_waiting_ones(tmp_path) -> None:
    data_dir = tmp_path / "data"
    now = time.time()
    numbers = await kept(data_dir, replayed_at=[now - 30 * 86400, None, now, None])
    done = hub_cli("purge", data_dir=data_dir)
    assert (done.returncode, done.stdout, done.stderr) == (0, "2 replayed requests dropped\n", "")
    assert listed(data_dir) == {numbers[1]: None, numbers[3]: None}
    again = hub_cli("purge", data_dir=data_dir)
    assert (again.returncode, again.stdout) == (0, "0 replayed requests dropped\n")


def test_drop_and_purge_without_a_journal_say_so(tmp_path) -> None:
    for args in (("drop", "1"), ("purge",)):
        done = hub_cli(*args, data_dir=tmp_path / "nothing")
        assert done.returncode == 1 and "no journal" in done.stderr, args
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "nothing").exists()


# -- the retention --------------------------------------------------------------------------


async def test_the_retention_deletes_requests_replayed_long_ago_only(
    aiohttp_client, tmp_path
) -> None:
    """Replayed over ``quarantine_retention`` ago: deleted by the retention task (it runs at the
    start, then hourly). Replayed since, or never replayed however old: kept."""
    data_dir = tmp_path / "data"
    now = time.time()
    old, recent, waiting = await kept(data_dir, replayed_at=[now - 3 * 86400, now - 3600, None])
    settings = make_settings(data_dir, quarantine_retention=2 * 86400)
    await aiohttp_client(create_app(settings))

    async def pruned() -> bool:
        return old not in listed(data_dir)

    await eventually(pruned)
    assert list(listed(data_dir)) == [recent, waiting]


def test_quarantine_retention_must_be_positive(tmp_path) -> None:
    with pytest.raises(ValueError, match="quarantine_retention"):
        make_settings(tmp_path, quarantine_retention=0)


def test_the_metric_is_nan_while_the_journal_cannot_be_read(tmp_path) -> None:
    """A journal deleted under the hub: the scrape still answers (hub_journal_ready says why)."""
    metrics = Metrics(CollectorRegistry())
    metrics.count_quarantine(partial(store.quarantine_waiting, tmp_path / "gone.sqlite3"))
    value = metric(generate_latest(metrics.registry).decode(), "hub_quarantine_requests")
    assert value is not None and math.isnan(value)
