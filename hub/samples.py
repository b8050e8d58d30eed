"""The samples ``hub send`` and the console's setup page send:
``parsers/samples/<slug>/<case>.{query,body,json}``, installed with the package. They are the
golden test cases (their format is described in ``tests/golden.py``): ``seed-*`` and ``pdf-*``
are the providers' documented samples, byte for byte; the others are the hub's own cases,
refusals included."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

import orjson

from core.models import Provider
from parsers import REGISTRY

DOCUMENTED = ("seed-", "pdf-")


@dataclass(frozen=True)
class Sample:
    provider: Provider
    name: str
    callback: str
    method: str
    content_type: str
    input: bytes
    in_query: bool
    """The input is the query string (else the body)."""
    expected: dict[str, Any]
    """The case's ``reply`` and ``events`` (or ``error``): what the hub answers and makes of it."""

    @property
    def documented(self) -> bool:
        return self.name.startswith(DOCUMENTED)

    @property
    def gives_events(self) -> bool:
        return bool(self.expected.get("events"))

    def outcome(self) -> str:
        """What the hub makes of it, in a few words: ``1 event``, ``refused: invalid_xml``."""
        if "error" in self.expected:
            return f"refused: {self.expected['error']}"
        count = len(self.expected.get("events", ()))
        return "no event" if not count else f"{count} event{'s' if count > 1 else ''}"


def _folder() -> Traversable:
    return resources.files("parsers").joinpath("samples")


def _load(provider: Provider, spec_file: Traversable) -> Sample:
    folder = _folder().joinpath(provider.value)
    stem = spec_file.name.removesuffix(".json")
    spec = orjson.loads(spec_file.read_bytes())
    query, body = folder.joinpath(f"{stem}.query"), folder.joinpath(f"{stem}.body")
    in_query = query.is_file()
    return Sample(
        provider=provider,
        name=stem,
        callback=spec["callback"],
        method=spec.get("method", "GET"),
        content_type=spec.get("content_type") or "",
        input=(query if in_query else body).read_bytes(),
        in_query=in_query,
        expected={k: spec[k] for k in ("reply", "events", "error") if k in spec},
    )


def catalog(provider: Provider | None = None) -> list[Sample]:
    """Every sample (of one provider): by provider and callback, documented ones first."""
    found: list[Sample] = []
    for slug in [provider] if provider else list(REGISTRY):
        folder = _folder().joinpath(slug.value)
        if not folder.is_dir():
            continue
        order = [c.name for c in REGISTRY[slug].CALLBACKS]
        loaded = [_load(slug, f) for f in folder.iterdir() if f.name.endswith(".json")]
        found += sorted(loaded, key=lambda s: (order.index(s.callback), not s.documented, s.name))
    return found


def for_callback(provider: Provider, callback: str) -> Iterator[Sample]:
    return (s for s in catalog(provider) if s.callback == callback)


def default(provider: Provider, callback: str) -> Sample | None:
    """What ``hub send PROVIDER CALLBACK`` sends: its first documented sample that gives events,
    else its first sample giving events, else its first sample."""
    samples = list(for_callback(provider, callback))
    for choice in (
        [s for s in samples if s.documented and s.gives_events],
        [s for s in samples if s.gives_events],
        samples,
    ):
        if choice:
            return choice[0]
    return None
