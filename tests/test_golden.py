"""Every golden case gives exactly its expected events and reply."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hub.models import Provider
from tests.golden import PAYLOADS, Case, all_cases, run

SEEDS = Path(__file__).resolve().parents[2] / "shared" / "seeds"
SEED_FILES = {
    Provider.ECAMPAIGN: "000_ae6fdf2cfca40d7a.txt",
    Provider.DMC: "001_a49677c959c6f70c.txt",
    Provider.ISENDPRO: "002_00a384ccbf66724e.txt",
    Provider.ECALL: "003_39674dc9916ea025.txt",
    Provider.SMSMODE: "004_b5f748c5600f4958.txt",
}
CASES = all_cases()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_golden(case: Case) -> None:
    expected = {k: case.spec[k] for k in ("reply", "events", "error") if k in case.spec}
    assert run(case) == expected


def _squeeze(text: str) -> str:
    """Seed text with the line breaks and indentation of its layout removed."""
    return re.sub(r"\s*\n\s*", "", text)


SEED_CASES = [c for c in CASES if c.name.startswith("seed-")]


@pytest.mark.parametrize("case", SEED_CASES, ids=[c.id for c in SEED_CASES])
def test_seed_case_input_stands_in_its_seed(case: Case) -> None:
    """A ``seed-*`` case is the seed's sample, byte for byte (the PDF's line wraps aside)."""
    seed = (SEEDS / SEED_FILES[case.provider]).read_text(encoding="utf-8")
    sample = case.input.decode("utf-8")
    assert sample in seed or _squeeze(sample) in _squeeze(seed)


def test_every_provider_has_sample_cases() -> None:
    """Each provider's documented samples are cases: ``seed-*`` from the seed text, or ``pdf-*``
    where the seed's extraction lost the sample and PROVIDERS.md gives it from the PDF."""
    have = {c.provider for c in CASES if c.name.startswith(("seed-", "pdf-"))}
    folders = {Provider(p.name) for p in PAYLOADS.iterdir() if p.is_dir()}
    assert folders <= have
