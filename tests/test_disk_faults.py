"""The journal on a bad day: its file deleted under load, a disk that stalls, a full disk, a
capped journal. A real ``hub serve`` process each time, callbacks streaming in (the load of
``tests.support.stream``); every callback acknowledged (``validation``) must be in the journal
in the end, and the health endpoints must tell the truth meanwhile.

The stalled and the full disk are file systems of the test's own (``tests.harness.disks``, as
root): the hub's log is kept outside them.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import aiohttp
import pytest

from core.errors import SinkUnavailable
from core.models import Event, Provider, RawRequest, utc_now
from hub.disk import worker_bytes
from parsers import REGISTRY
from sinks import journal as store
from tests.harness import disks
from tests.harness.hubproc import HubProcess
from tests.support import Results, acked, dlr_query, eventually, journaled, metric, stream

PROBLEME = "200 probleme"


async def status(hub: HubProcess, path: str, timeout: float = 5.0) -> int | None:
    """The status of ``GET path``, or None without an answer within ``timeout`` seconds."""
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http,
            http.get(f"{hub.url}{path}") as resp,
        ):
            await resp.read()
            return resp.status
    except (aiohttp.ClientError, TimeoutError):
        return None


async def ready_is(hub: HubProcess, expected: int, timeout: float = 30.0) -> None:
    async def check() -> bool:
        return await status(hub, "/health/ready") == expected

    await eventually(check, timeout)


async def scrape(hub: HubProcess, name: str, **labels: str) -> float | None:
    async with aiohttp.ClientSession() as http, http.get(f"{hub.url}/metrics") as resp:
        return metric(await resp.text(), name, **labels)


def journal_bytes(data_dir: Path) -> int:
    """Bytes of every file the journal has on disk (database, WAL, WAL index)."""
    total = 0
    for suffix in ("", "-wal", "-shm"):
        path = data_dir / f"{store.JOURNAL_FILE}{suffix}"
        if path.exists():
            total += path.stat().st_size
    return total


def on_disk(data_dir: Path) -> int:
    """Bytes of every file ``HUB_JOURNAL_MAX_BYTES`` counts: the journal's and the pipeline
    worker's (its index and its cursor, each with its WAL and the WAL's index)."""
    return journal_bytes(data_dir) + worker_bytes(data_dir)


async def until_refused(hub: HubProcess, results: Results, start: int, most: int = 5000) -> int:
    """Streams callbacks ``start``, ``start + 1``... in runs of 100 until some are refused (at
    most ``most``); returns the next number."""
    i = start
    while not results.refused and i < start + most:
        await stream(hub.url, range(i, i + 100), results)
        i += 100
    return i


async def test_deleted_journal_refuses_and_loses_nothing_acknowledged(tmp_path):
    """`rm journal.sqlite3*` under load: from the next commit on, callbacks get `probleme` and
    the hub is not ready, with an ERROR line and `hub_journal_ready 0`. Every callback it
    acknowledged, before the deletion and after, is in the copy the journal made of itself,
    which the operator puts back before the restart (what the log line says to do)."""
    data = tmp_path / "data"
    hub = HubProcess(data)
    results = Results()
    try:
        async with asyncio.timeout(120):
            await asyncio.to_thread(hub.start)
            streaming = asyncio.create_task(stream(hub.url, range(3000), results))
            await acked(results, 300, streaming)
            for path in data.glob(f"{store.JOURNAL_FILE}*"):
                path.unlink()
            await ready_is(hub, 503)
            assert await scrape(hub, "hub_journal_ready") == 0
            await streaming
            assert await status(hub, "/health/live") == 200
            code = await asyncio.to_thread(hub.terminate)
        assert code == 0, hub.log_tail()
        assert not results.failed
        assert results.refused, "callbacks refused once the journal was gone"
        assert set(results.refused.values()) == {PROBLEME}
        log = hub.log_file.read_text()
        assert "ERROR" in log and "gone or replaced" in log, hub.log_tail()
        assert not (data / store.JOURNAL_FILE).exists()
        [salvaged] = data.glob(f"{store.JOURNAL_FILE}.salvaged-*")
        salvaged.rename(data / store.JOURNAL_FILE)
        await asyncio.to_thread(hub.start)  # the restart, on the journal put back
        assert await asyncio.to_thread(hub.terminate) == 0, hub.log_tail()
    finally:
        hub.stop()
    journal = journaled(data)
    missing = sorted(results.acked - journal.keys())
    assert not missing, f"acknowledged but lost: {len(missing)} of {len(results.acked)}"


@pytest.mark.parametrize("with_broker", [False, pytest.param(True, marks=pytest.mark.broker)])
async def test_live_answers_while_the_disk_stalls(tmp_path, request, with_broker):
    """The journal's file system frozen for 8 s (`fsfreeze`) while callbacks stream in and
    `/metrics` is scraped (with a broker, that reads the journal's files): `/health/live`
    answers all along (within 2 s, a liveness probe's timeout), `/health/ready` goes 503 once a
    commit outlasts HUB_JOURNAL_COMMIT_TIMEOUT, waiting callbacks get `probleme` and none gets
    `validation` before the disk is back; then the hub is ready again by itself, and every
    acknowledged callback is journaled."""
    disks.require("mkfs.ext4", "losetup", "mount", "umount", "fsfreeze")
    rabbit = request.getfixturevalue("rabbit") if with_broker else None
    with disks.loop_ext4(tmp_path / "disk.img", tmp_path / "mnt") as mnt:
        hub = HubProcess(
            mnt / "data",
            {"HUB_JOURNAL_COMMIT_TIMEOUT": "2"},
            rabbitmq_url=rabbit.url if rabbit else None,
            log_file=tmp_path / "hub.log",
        )
        results = Results()
        try:
            async with asyncio.timeout(120):
                await asyncio.to_thread(hub.start)
                await stream(hub.url, range(100), results)
                assert results.acked == set(range(100))
                stop = asyncio.Event()
                during = Results()
                with disks.frozen(mnt):
                    streaming = asyncio.create_task(
                        stream(hub.url, range(100, 90_000), during, stop=stop)
                    )
                    live, ready = [], []
                    loop = asyncio.get_running_loop()
                    until = loop.time() + 8
                    while loop.time() < until:
                        await status(hub, "/metrics", timeout=2)  # may wait for the disk
                        live.append(await status(hub, "/health/live", timeout=2))
                        ready.append(await status(hub, "/health/ready", timeout=2))
                    acked_while_frozen = set(during.acked)
                    refused_while_frozen = dict(during.refused)
                stop.set()
                await streaming
                await ready_is(hub, 200)
                after = await stream(hub.url, range(90_000, 90_100), Results())
                code = await asyncio.to_thread(hub.terminate)
        finally:
            hub.stop()
        journal = journaled(mnt / "data")
    assert code == 0, hub.log_tail()
    assert all(s == 200 for s in live), f"/health/live while frozen: {live}"
    assert 503 in ready, f"/health/ready while frozen: {ready}"
    assert not acked_while_frozen, "acknowledged while the disk could not sync"
    assert refused_while_frozen, "callbacks told to retry after their bounded wait"
    assert set(during.refused.values()) == {PROBLEME}
    assert after.acked == set(range(90_000, 90_100))
    acknowledged = results.acked | during.acked | after.acked
    missing = sorted(acknowledged - journal.keys())
    assert not missing, f"acknowledged but not journaled: {missing}"


async def test_full_disk_is_not_ready_and_ready_again_once_space_is_freed(tmp_path):
    """The journal's file system (a 16 MiB tmpfs) fills up: callbacks get `probleme`, the hub is
    not ready; a file deleted, it is ready again on its own and takes callbacks; every
    acknowledged callback is journaled."""
    disks.require("mount", "umount")
    with disks.tmpfs(tmp_path / "mnt", 16 << 20) as mnt:
        hub = HubProcess(mnt / "data", log_file=tmp_path / "hub.log")
        results = Results()
        filler = mnt / "filler"
        filler.touch()  # made while there is room: it is what fills the disk, and is deleted
        try:
            async with asyncio.timeout(180):
                await asyncio.to_thread(hub.start)
                await stream(hub.url, range(100), results)
                assert results.acked == set(range(100))
                await asyncio.to_thread(fill, filler)
                i = await until_refused(hub, results, 100)
                assert set(results.refused.values()) == {PROBLEME}
                await ready_is(hub, 503)
                assert await scrape(hub, "hub_journal_ready") == 0
                filler.unlink()
                await ready_is(hub, 200)
                after = await stream(hub.url, range(i, i + 100), Results())
                code = await asyncio.to_thread(hub.terminate)
        finally:
            hub.stop()
        journal = journaled(mnt / "data")
    assert code == 0, hub.log_tail()
    assert after.acked == set(range(i, i + 100))
    missing = sorted((results.acked | after.acked) - journal.keys())
    assert not missing, f"acknowledged but not journaled: {missing}"


def fill(path: Path) -> None:
    """Writes ``path`` (an existing file: creating one on a full tmpfs failed once in CI with
    ENOSPC) until its file system is full."""
    chunk = b"\0" * (64 << 10)
    try:  # (its opening too: once refused with ENOSPC in a loaded make test, the disk full)
        with open(path, "ab") as f:
            while True:
                f.write(chunk)
                f.flush()
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise


async def test_journal_max_bytes_holds_for_every_file_of_the_journal(tmp_path):
    """HUB_JOURNAL_MAX_BYTES=1000000 and callbacks until it is reached: the database, its WAL
    and its index never take more than that together; once full, callbacks get `probleme` and
    the hub is not ready. With the pipeline worker's files, counted as they stand at each
    commit, the total stays under it too once the hub has stopped (the worker caught up; the
    WAL, emptied at the stop, left room for what it indexed after the last commit)."""
    cap = 1_000_000
    data = tmp_path / "data"
    hub = HubProcess(data, {"HUB_JOURNAL_MAX_BYTES": str(cap)})
    results = Results()
    sizes = []
    try:
        async with asyncio.timeout(120):
            await asyncio.to_thread(hub.start)
            i = 0
            while not results.refused and i < 20_000:
                await stream(hub.url, range(i, i + 50), results)
                sizes.append(journal_bytes(data))
                i += 50
            assert set(results.refused.values()) == {PROBLEME}
            await ready_is(hub, 503)
            code = await asyncio.to_thread(hub.terminate)
    finally:
        hub.stop()
    assert code == 0, hub.log_tail()
    assert results.acked, "callbacks acknowledged before the cap"
    assert max(sizes) <= cap, f"{max(sizes)} bytes on disk for a cap of {cap}"
    assert on_disk(data) <= cap
    missing = sorted(results.acked - journaled(data).keys())
    assert not missing, f"acknowledged but not journaled: {missing}"


@pytest.mark.parametrize("fault", ["database replaced", "WAL deleted"])
async def test_journal_notices_a_file_replaced_or_its_wal_deleted(tmp_path, fault):
    """In process, the other ways the open file stops being the journal's: the database
    replaced by another file (a restore, a `mv`), or only its WAL deleted. The next commit is
    refused, the journal is not ready, and its copy holds what was acknowledged before."""
    journal = store.Journal.open(tmp_path)
    try:
        await journal.append(events(1))
        if fault == "database replaced":
            other = tmp_path / "other.sqlite3"
            with closing(sqlite3.connect(other)) as conn:
                conn.execute("CREATE TABLE t (x)")
            os.replace(other, journal.path)
        else:
            os.unlink(f"{journal.path}-wal")
        with pytest.raises(SinkUnavailable) as refused:
            await journal.append(events(2))
        assert refused.value.reason == "journal_gone"
        assert not journal.ready
        with pytest.raises(SinkUnavailable):
            await journal.append(events(3))
    finally:
        journal.close()
    [salvaged] = tmp_path.glob(f"{store.JOURNAL_FILE}.salvaged-*")
    kept = [s.event().data.message_id for s in store.select(salvaged)]
    assert kept[0] == "1"
    assert "3" not in kept


def events(i: int) -> list[Event]:
    raw = RawRequest(
        provider=Provider.ISENDPRO,
        callback="delivery",
        method="GET",
        query=dlr_query(i).encode(),
        body=b"",
        content_type="",
        received_at=utc_now(),
    )
    return REGISTRY[Provider.ISENDPRO].parse(raw)


async def test_an_idle_journal_whose_file_is_deleted_is_not_ready_and_says_so(tmp_path, caplog):
    """No callback comes after the deletion: `ready` is false at the next look all the same,
    and the journal logs the ERROR and copies itself without waiting for traffic."""
    journal = store.Journal.open(tmp_path)
    try:
        await journal.append(events(1))
        assert journal.ready
        for path in tmp_path.glob(f"{store.JOURNAL_FILE}*"):
            os.unlink(path)
        assert not journal.ready

        async def copied() -> bool:
            return any(tmp_path.glob(f"{store.JOURNAL_FILE}.salvaged-*"))

        await eventually(copied, timeout=10)
        assert journal.trouble == "journal_gone"
        assert any(r.levelname == "ERROR" and "gone" in r.getMessage() for r in caplog.records)
    finally:
        journal.close()


async def test_a_capped_journal_is_ready_again_once_retention_frees_room(tmp_path):
    """At HUB_JOURNAL_MAX_BYTES the journal refuses and is not ready; once old events are
    deleted (retention) it is ready again by itself and takes events, still under the cap."""
    cap = 300_000
    journal = store.Journal.open(tmp_path, max_bytes=cap)
    try:
        i = 0
        while journal.ready and i < 5000:
            with contextlib.suppress(SinkUnavailable):
                await journal.append(events(i))
            i += 1
        assert journal.trouble == "journal_full"
        assert on_disk(tmp_path) <= cap
        assert await journal.prune(time.time() + 1, forwarded_up_to=None) > 0

        async def ready() -> bool:
            return journal.ready

        await eventually(ready, timeout=10)
        await journal.append(events(i))
        assert on_disk(tmp_path) <= cap
    finally:
        journal.close()
