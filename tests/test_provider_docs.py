"""Document checks (opt-in): the transcribed facts and the ``seed-*`` samples (of the callbacks
and of the polling methods' answers) against the providers' own documents, read from the folder named by ``HUB_PROVIDER_DOCS``.

Skipped when the variable is unset (see ``tests/provider_docs.py``); ``.ci/run`` sets it.
"""

from __future__ import annotations

import re

import pytest

from core.models import Provider
from tests.golden import Case, all_cases
from tests.golden_pull import PullCase
from tests.golden_pull import all_cases as all_pull_cases
from tests.provider_docs import DOCUMENTS, document, extract, facts


@pytest.mark.parametrize("provider", list(DOCUMENTS), ids=[p.value for p in DOCUMENTS])
def test_the_facts_are_what_the_document_says(provider: Provider) -> None:
    """``tests/docfacts/<slug>.json`` is exactly what the document holds (every code, its words).

    On a failure, ``python -m tests.provider_docs`` writes the facts anew: read the diff."""
    assert extract(provider, document(provider)) == facts(provider)


def _squeeze(text: str) -> str:
    """Document text with the line breaks and indentation of its layout removed."""
    return re.sub(r"\s*\n\s*", "", text)


SEED_CASES = [c for c in all_cases() if c.name.startswith("seed-")]


@pytest.mark.parametrize("case", SEED_CASES, ids=[c.id for c in SEED_CASES])
def test_seed_case_input_stands_in_its_document(case: Case) -> None:
    """A ``seed-*`` case is the document's sample, byte for byte (the PDF's line wraps aside)."""
    text = document(case.provider)
    sample = case.input.decode("utf-8")
    assert sample in text or _squeeze(sample) in _squeeze(text)


PULL_SEED_CASES = [c for c in all_pull_cases() if c.name.startswith("seed-")]


@pytest.mark.parametrize("case", PULL_SEED_CASES, ids=[c.id for c in PULL_SEED_CASES])
def test_pull_seed_case_input_stands_in_its_document(case: PullCase) -> None:
    """A ``seed-*`` answer of a polling method is the document's sample, the same way."""
    text = document(case.provider)
    sample = case.body.decode("utf-8")
    assert sample in text or _squeeze(sample) in _squeeze(text)
