"""Every golden case of the pull readers gives exactly its expected page, events byte for byte."""

from __future__ import annotations

import orjson
import pytest

from core.models import Event, Provider
from tests.golden_pull import PULL_SAMPLES, PullCase, all_cases, module, run

CASES = all_cases()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_pull_golden(case: PullCase) -> None:
    expected = {k: case.spec[k] for k in ("page", "error") if k in case.spec}
    assert len(expected) == 1, "a case expects a page or an error"
    assert run(case) == expected


EVENT_CASES = [
    c for c in CASES if any(i["events"] for i in c.spec.get("page", {}).get("items", []))
]


@pytest.mark.parametrize("case", EVENT_CASES, ids=[c.id for c in EVENT_CASES])
def test_pull_golden_bytes(case: PullCase) -> None:
    """The bytes the journal would store, byte for byte (see ``tests/test_golden.py``), and each
    event valid as read back; every event says it came by polling."""
    page = case.reader()(case.response())
    events = [e for item in page.items for e in item.events]
    expected = [doc for item in case.spec["page"]["items"] for doc in item["events"]]
    assert [e.to_json() for e in events] == [orjson.dumps(doc) for doc in expected]
    for event in events:
        assert Event.from_json(event.to_json()) == event
        assert event.data.details["via"] == "poll"


def test_every_pull_folder_is_a_provider_with_readers() -> None:
    folders = [p for p in PULL_SAMPLES.iterdir() if p.is_dir()]
    assert folders
    for folder in folders:
        readers = module(Provider(folder.name)).READERS
        assert readers
        assert {c.spec["method"] for c in CASES if c.provider.value == folder.name} <= set(readers)


DOCUMENTED = {Provider.ECAMPAIGN: False, Provider.ECALL: False, Provider.DMC: True}
"""Which pull folders must hold a ``seed-*`` case: DMC's document shows a filled answer of
getResponsesSMS; eCall's shows the buffer's answers only as structures without content (3.6),
and eCampaign's samples of getResponses/getBlacklist were lost in the text extraction (p.41-43)."""


def test_documented_answers_are_cases() -> None:
    have = {c.provider for c in CASES if c.name.startswith("seed-")}
    folders = {Provider(p.name) for p in PULL_SAMPLES.iterdir() if p.is_dir()}
    assert {p for p in folders if DOCUMENTED.get(p, True)} <= have
