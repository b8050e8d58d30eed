"""Every golden case gives exactly its expected events and reply."""

from __future__ import annotations

import pytest

from core.models import Provider
from tests.golden import PAYLOADS, Case, all_cases, run

CASES = all_cases()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_golden(case: Case) -> None:
    expected = {k: case.spec[k] for k in ("reply", "events", "error") if k in case.spec}
    assert run(case) == expected


def test_every_provider_has_sample_cases() -> None:
    """Each provider's documented samples are cases: ``seed-*`` from the document's text, or
    ``pdf-*`` where the text extraction lost the sample and the published PDF shows it (see
    ``docs/providers.md``)."""
    have = {c.provider for c in CASES if c.name.startswith(("seed-", "pdf-"))}
    folders = {Provider(p.name) for p in PAYLOADS.iterdir() if p.is_dir()}
    assert folders <= have
