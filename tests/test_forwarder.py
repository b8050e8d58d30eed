"""The forwarder against in-memory versions of what it reads, where it publishes and where it
keeps its cursor: it opens no file of its own."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace

from core.errors import SinkUnavailable
from core.models import Envelope
from hub.forwarder import Forwarder
from sinks.journal import Stored
from sinks.memory import MemorySink
from sinks.progress import Progress
from tests.support import event, eventually


class MemoryPending:
    """The journal's pending events, as a list."""

    def __init__(self, stored: list[Stored]) -> None:
        self.stored = stored
        self.closed = False

    def read(self, after: int, limit: int) -> list[Stored]:
        return [s for s in self.stored if s.seq > after][:limit]

    def last_seq(self) -> int:
        return self.stored[-1].seq if self.stored else 0

    def close(self) -> None:
        self.closed = True


class MemoryCursor:
    def __init__(self, progress: Progress | None = None) -> None:
        self.saved = progress or Progress()

    def load(self) -> Progress:
        return replace(self.saved)

    def save(self, progress: Progress) -> None:
        self.saved = replace(progress, forwarded=dict(progress.forwarded))


class MemoryIndex:
    """The worker's index, as a dict: an id seen again within the window is a duplicate."""

    refilling = None  # no old rows to fill: tests/test_readmodel_upgrade.py has them

    def __init__(self) -> None:
        self.cursor = 0
        self.marked: dict[int, bool] = {}
        self.latest: dict[str, float] = {}

    def refill(self, events, up_to: int) -> None:
        raise AssertionError("nothing to refill")

    def process(self, events, window: float) -> list[bool]:
        flags = []
        for seq, id_, received_at, _ in events:
            last = self.latest.get(id_)
            duplicate = last is not None and last >= received_at - window
            if not duplicate:
                self.latest[id_] = received_at
            self.marked[seq] = duplicate
            flags.append(duplicate)
            self.cursor = seq
        return flags

    def duplicates(self, after: int, up_to: int) -> set[int]:
        return {s for s, d in self.marked.items() if d and after < s <= up_to}

    def prune(self, received_before: float) -> int:
        return 0


class HalfSink(MemorySink):
    """A broker that goes away in the middle of the first batch, ``done`` envelopes confirmed,
    and stays away."""

    def __init__(self, done: int) -> None:
        super().__init__()
        self.done = done

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        done, self.done = self.done, 0
        self.envelopes.extend(envelopes[:done])
        raise SinkUnavailable("the broker went away", reason="broker_unavailable", done=done)


def journal(count: int) -> list[Stored]:
    events = [event(n) for n in range(1, count + 1)]
    return [
        Stored(seq, "isendpro", e.data.received_at.timestamp(), Envelope.of(e))
        for seq, e in enumerate(events, start=1)
    ]


async def forwarded(
    stored: list[Stored],
    sink: MemorySink,
    cursor: MemoryCursor,
    *,
    batch: int,
    up_to: int,
    index: MemoryIndex | None = None,
) -> MemoryPending:
    """Runs a forwarder until its cursor reaches ``up_to``, then stops it."""
    pending = MemoryPending(stored)
    index = index or MemoryIndex()
    forwarder = Forwarder(pending, sink, cursor, index, batch=batch, poll_interval=0.001)
    forwarder.start()
    try:

        async def there() -> bool:
            return cursor.saved.cursor >= up_to

        await eventually(there, timeout=10)
    finally:
        await forwarder.stop(flush_timeout=5)
    return pending


async def test_it_forwards_in_order_in_batches_and_moves_its_cursor() -> None:
    stored = journal(5)
    sink, cursor = MemorySink(), MemoryCursor()
    pending = await forwarded(stored, sink, cursor, batch=2, up_to=5)
    assert [e.id for e in sink.envelopes] == [s.envelope.id for s in stored]
    assert cursor.saved.forwarded == {"isendpro": 5}
    assert pending.closed


async def test_it_starts_after_its_cursor() -> None:
    stored = journal(4)
    sink = MemorySink()
    await forwarded(stored, sink, MemoryCursor(Progress(cursor=3)), batch=10, up_to=4)
    assert [e.id for e in sink.envelopes] == [stored[3].envelope.id]


async def test_a_batch_confirmed_in_part_moves_the_cursor_past_that_part_only() -> None:
    stored = journal(4)
    cursor = MemoryCursor()
    sink = HalfSink(done=3)
    await forwarded(stored, sink, cursor, batch=4, up_to=3)
    assert cursor.saved.cursor == 3
    assert [e.id for e in sink.envelopes] == [s.envelope.id for s in stored[:3]]


async def test_only_a_real_pause_is_a_warning(caplog) -> None:
    """Before the sink's first connection the forwarder waits without a word (the sink says
    when the broker cannot be reached); once it has forwarded, a broker gone is a warning."""
    caplog.set_level(logging.INFO, logger="hub.forwarder")
    stored = journal(2)
    sink, cursor = MemorySink(), MemoryCursor()
    forwarder = Forwarder(MemoryPending(stored), sink, cursor, MemoryIndex(), batch=1)
    sink.failing = True  # connecting
    assert not await forwarder.forward_batch()
    sink.failing = False
    assert await forwarder.forward_batch()
    assert not [r for r in caplog.records if r.name == "hub.forwarder"]
    sink.failing = True  # gone
    assert not await forwarder.forward_batch()
    [warning] = [r for r in caplog.records if r.name == "hub.forwarder"]
    assert warning.getMessage() == "forwarding paused: broker_unavailable (1 events waiting)"
    sink.failing = False
    assert await forwarder.forward_batch()
    assert caplog.records[-1].getMessage() == "forwarding again"


def retried(stored: list[Stored], *copies: int) -> list[Stored]:
    """The journal with the events at the given positions journaled again after it (retries)."""
    again = [replace(stored[i], seq=len(stored) + n) for n, i in enumerate(copies, start=1)]
    return stored + again


async def test_a_retry_is_indexed_as_a_duplicate_and_never_published() -> None:
    stored = retried(journal(3), 0, 2)
    sink, cursor, index = MemorySink(), MemoryCursor(), MemoryIndex()
    await forwarded(stored, sink, cursor, batch=2, up_to=5, index=index)
    assert [e.id for e in sink.envelopes] == [s.envelope.id for s in stored[:3]]
    assert index.duplicates(0, 5) == {4, 5}
    assert cursor.saved.forwarded == {"isendpro": 3}  # duplicates are not counted as forwarded


async def test_after_a_partial_confirm_duplicates_are_still_left_out() -> None:
    stored = retried(journal(3), 0)  # seq 4 repeats seq 1
    cursor, index = MemoryCursor(), MemoryIndex()
    await forwarded(stored, HalfSink(done=2), cursor, batch=4, up_to=2, index=index)
    assert cursor.saved.cursor == 2
    sink = MemorySink()
    await forwarded(stored, sink, cursor, batch=4, up_to=4, index=index)
    assert [e.id for e in sink.envelopes] == [stored[2].envelope.id]


async def test_a_new_index_catches_up_with_what_was_forwarded_before_publishing() -> None:
    stored = retried(journal(3), 0)  # seq 4 repeats seq 1, forwarded long ago
    sink, cursor, index = MemorySink(), MemoryCursor(Progress(cursor=3)), MemoryIndex()
    await forwarded(stored, sink, cursor, batch=2, up_to=4, index=index)
    assert sink.envelopes == []
    assert index.duplicates(0, 4) == {4}


async def test_without_a_broker_it_indexes_everything() -> None:
    stored = retried(journal(3), 1)
    index = MemoryIndex()
    forwarder = Forwarder(MemoryPending(stored), None, MemoryCursor(), index, poll_interval=0.001)
    forwarder.start()
    try:

        async def there() -> bool:
            return index.cursor == 4

        await eventually(there, timeout=10)
    finally:
        await forwarder.stop(flush_timeout=5)
    assert index.duplicates(0, 4) == {4}


class LostConfirmsSink(MemorySink):
    """A broker that keeps every message of the first batch but whose confirms, past the first
    ``done``, are lost with the connection."""

    def __init__(self, done: int) -> None:
        super().__init__()
        self.done: int | None = done

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        self.envelopes.extend(envelopes)
        if self.done is not None:
            done, self.done = self.done, None
            raise SinkUnavailable("the broker went away", reason="broker_unavailable", done=done)


class BlindSink(MemorySink):
    """A sink that cannot tell what it has (its stream gone, or too slow to read)."""

    async def already_published(
        self, envelopes: Sequence[Envelope], *, since: float | None = None
    ) -> set[str] | None:
        return None


def ids(envelopes: Sequence[Envelope]) -> list[str]:
    return [e.id for e in envelopes]


async def test_after_a_restart_what_the_sink_has_already_is_not_sent_again() -> None:
    """The crash came after the broker took events 3 and 4, before the cursor (2) moved: the
    new forwarder's first batch (3 to 6) is shown to the sink first, and only 5 and 6 go."""
    stored = journal(6)
    sink = MemorySink()
    sink.envelopes = [s.envelope for s in stored[:4]]
    cursor = MemoryCursor(Progress(cursor=2))
    await forwarded(stored, sink, cursor, batch=4, up_to=6)
    assert ids(sink.envelopes) == ids([s.envelope for s in stored])
    assert cursor.saved.forwarded == {"isendpro": 4}
    assert cursor.saved.unchecked_resends == 0


async def test_confirms_lost_with_the_connection_are_sent_again_not_skipped() -> None:
    """A broker that went away may have kept a message in its stream and lost it from another
    queue: after an outage, the batch in flight is sent again, not looked up in the stream."""
    stored = journal(5)
    sink, cursor = LostConfirmsSink(done=1), MemoryCursor()
    pending = MemoryPending(stored)
    forwarder = Forwarder(pending, sink, cursor, MemoryIndex(), batch=5)
    assert not await forwarder.forward_batch()  # 5 kept, 1 confirmed, the connection lost
    assert cursor.saved.cursor == 1
    assert await forwarder.forward_batch()  # the 4 others again, same message_id
    assert cursor.saved.cursor == 5
    assert ids(sink.envelopes) == ids([s.envelope for s in stored + stored[1:]])


async def test_only_the_first_batch_after_an_interruption_is_checked() -> None:
    stored = journal(4)
    sink, cursor = MemorySink(), MemoryCursor()
    forwarder = Forwarder(MemoryPending(stored), sink, cursor, MemoryIndex(), batch=2)
    sink.envelopes = [stored[0].envelope]
    assert await forwarder.forward_batch()  # checked: 1 skipped, 2 sent
    sink.envelopes.append(stored[2].envelope)  # as if 3 were there: not asked any more
    assert await forwarder.forward_batch()
    assert ids(sink.envelopes) == ids([s.envelope for s in (stored[:3] + stored[2:])])


async def test_a_sink_that_cannot_tell_gets_the_batch_again_and_it_is_counted() -> None:
    stored = journal(3)
    sink = BlindSink()
    sink.envelopes = [stored[0].envelope]
    cursor = MemoryCursor()
    await forwarded(stored, sink, cursor, batch=3, up_to=3)
    assert ids(sink.envelopes) == ids([stored[0].envelope] + [s.envelope for s in stored])
    assert cursor.saved.unchecked_resends == 1
