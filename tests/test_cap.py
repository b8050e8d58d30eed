"""What ``HUB_JOURNAL_MAX_BYTES`` counts and how the journal keeps within it: the pipeline
worker's files beside the journal's own, and the journal's own upkeep (its prunings) never
finding it full."""

from __future__ import annotations

import asyncio
import time

import pytest

from hub.app import create_app
from hub.disk import worker_bytes
from sinks import journal as store
from sinks.journal.files import SHM_CHUNK, Cap
from tests.support import DLR, dlr_query, event, make_settings, metric, write_journal
from tests.test_disk_faults import events, journal_bytes

SOME = 50
"""Callbacks sent at a capped hub whose worker's index is big."""
WORKER_WAL = 2 * 1000 * (4096 + 24)
"""What the WALs of the worker's files may take: 1000 pages each, SQLite's checkpoint."""


@pytest.mark.parametrize("room", [False, True], ids=["index-counted", "room-for-all"])
async def test_a_big_index_counts_in_the_cap_and_gets_the_retry_answer(
    aiohttp_client, tmp_path, room: bool
) -> None:
    """The pipeline worker's index counts in HUB_JOURNAL_MAX_BYTES: a cap that would leave the
    journal alone room for these callbacks, but not beside the worker's index, gets iSendPro's
    retry answer (``probleme``) and makes the hub not ready. With room for everything (the
    same data directory, the cap raised by the index's size and by its WAL's, which grows up
    to SQLite's checkpoint at 1000 pages as the worker indexes the callbacks), every callback
    is acknowledged."""
    data_dir = tmp_path / "data"
    # a journal and its index as a hub leaves them (the journal's and the worker's own code)
    await asyncio.to_thread(write_journal, data_dir, [event(i) for i in range(2000)])
    journal, worker = journal_bytes(data_dir), worker_bytes(data_dir)
    assert worker > 200_000, "the worker's index is big"
    # the database's share of a cap is 3/4 of it, less the WAL index (Cap.of): here the journal
    # alone would have half the index's size to grow; beside the index it has none
    cap = (journal + worker // 2 + SHM_CHUNK) * 4 // 3
    if room:
        cap += (worker + WORKER_WAL) * 4 // 3
    budget = Cap.of(cap, 4096).pages * 4096
    assert budget - journal > 4 * SOME * 1000, "the journal alone has room for every callback"
    settings = make_settings(data_dir, journal_max_bytes=cap)
    client = await aiohttp_client(create_app(settings))
    answers = [
        await (await client.get(f"{DLR}?{dlr_query(10_000 + i)}")).text() for i in range(SOME)
    ]
    ready = (await client.get("/health/ready")).status
    text = await (await client.get("/metrics")).text()
    refused = metric(text, "hub_callbacks_total", outcome="unavailable", reason="journal_full")
    if room:
        assert answers == ["validation"] * SOME
        assert (ready, refused) == (200, None)  # no journal_full label set at all
    else:
        assert "probleme" in answers, "the retry answer once the index is counted"
        assert answers[-1] == "probleme"
        assert ready == 503
        assert refused == answers.count("probleme")


async def test_prunings_of_a_small_capped_journal_never_find_it_full(tmp_path) -> None:
    """The hub prunes the journal and the quarantine at start and every hour: in a capped
    journal each chunk must fit the WAL's share (a quarter of the cap), or the journal would be
    full, not ready and refusing callbacks for a second each time."""
    journal = store.Journal.open(tmp_path, max_bytes=1_000_000)
    try:
        await journal.append(events(1))
        assert await journal.prune(time.time() - 100, forwarded_up_to=None) == 0
        assert await journal.prune_quarantine(time.time() - 100) == 0
        assert (journal.trouble, journal.ready) == (None, True)
    finally:
        journal.close()
