"""Every golden case gives exactly its expected events and reply."""

from __future__ import annotations

import orjson
import pytest

from core.models import Provider
from parsers import REGISTRY
from tests.golden import PAYLOADS, Case, all_cases, run

CASES = all_cases()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_golden(case: Case) -> None:
    expected = {k: case.spec[k] for k in ("reply", "events", "error") if k in case.spec}
    assert run(case) == expected


EVENT_CASES = [c for c in CASES if c.spec.get("events")]


@pytest.mark.parametrize("case", EVENT_CASES, ids=[c.id for c in EVENT_CASES])
def test_golden_bytes(case: Case) -> None:
    """The bytes the journal stores and the broker gets, byte for byte: the expected documents
    are kept in the case in the order ``to_json`` writes them, so written out again compactly
    (orjson, as the hub does) they are the bytes."""
    events = REGISTRY[case.provider].parse(case.request())
    assert [e.to_json() for e in events] == [orjson.dumps(doc) for doc in case.spec["events"]]


def test_every_provider_has_sample_cases() -> None:
    """Each provider's documented samples are cases: ``seed-*`` from the document's text, or
    ``pdf-*`` where the text extraction lost the sample and the published PDF shows it (see
    ``docs/providers.md``)."""
    have = {c.provider for c in CASES if c.name.startswith(("seed-", "pdf-"))}
    folders = {Provider(p.name) for p in PAYLOADS.iterdir() if p.is_dir() and p.name != "pull"}
    assert folders <= have
