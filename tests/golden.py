"""Golden cases: ``parsers/samples/<slug>/<case>.json`` beside the raw input of the case.

The cases live in the package (``parsers/samples/``, installed with it) because they are also
the samples ``hub send`` sends to a running hub: one copy, the same bytes for both.

The input is ``<case>.query`` (the query string, without ``?``) or ``<case>.body`` (the POST body),
byte for byte as the provider sends it. The JSON says how the request arrives and what the hub
must make of it::

    {"callback": "delivery", "method": "GET", "content_type": "",
     "received_at": "2026-01-01T00:00:00Z",
     "reply": {"status": 200, "body": "validation"},
     "events": [<CloudEvents JSON documents>]}       # or "error": "<PayloadError reason>"

Cases named ``seed-*`` are samples copied from the provider's document: a document check
(``tests/test_provider_docs.py``, opt-in) shows that their input stands in the document's text.
``pdf-*`` cases follow a sample the text extraction lost, copied from the published PDF (see
``docs/providers.md``).

``python -m tests.golden PATH.json`` prints what the parser makes of a case, to help write one;
what it prints must be checked against the seed by hand before it becomes the expected result.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from core.errors import PayloadError
from core.models import Provider, RawRequest
from parsers import REGISTRY

PAYLOADS = Path(__file__).resolve().parent.parent / "parsers" / "samples"


@dataclass(frozen=True)
class Case:
    provider: Provider
    name: str
    spec: dict[str, Any]
    input: bytes
    input_kind: str  # "query" or "body"

    @property
    def id(self) -> str:
        return f"{self.provider.value}/{self.name}"

    def request(self) -> RawRequest:
        return RawRequest(
            provider=self.provider,
            callback=self.spec["callback"],
            method=self.spec.get("method", "GET"),
            query=self.input if self.input_kind == "query" else b"",
            body=self.input if self.input_kind == "body" else b"",
            content_type=self.spec.get("content_type", ""),
            received_at=datetime.fromisoformat(self.spec["received_at"]),
        )


def load_case(path: Path) -> Case:
    spec = orjson.loads(path.read_bytes())
    inputs = [p for p in (path.with_suffix(".query"), path.with_suffix(".body")) if p.exists()]
    if len(inputs) != 1:
        raise ValueError(f"{path}: needs exactly one of .query or .body beside it")
    return Case(
        provider=Provider(path.parent.name),
        name=path.stem,
        spec=spec,
        input=inputs[0].read_bytes(),
        input_kind=inputs[0].suffix[1:],
    )


def all_cases() -> list[Case]:
    return [load_case(p) for p in sorted(PAYLOADS.glob("*/*.json"))]


def run(case: Case) -> dict[str, Any]:
    """What the parser makes of a case, in the shape of the case's JSON."""
    module = REGISTRY[case.provider]
    try:
        events = module.parse(case.request())
    except PayloadError as exc:
        reply = module.nack(exc)
        return {"error": exc.reason, "reply": _reply(reply)}
    return {
        "reply": _reply(module.ack(events)),
        "events": [orjson.loads(e.to_json()) for e in events],
    }


def _reply(reply: Any) -> dict[str, Any]:
    return {"status": reply.status, "body": reply.body.decode("utf-8", "replace")}


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        case = load_case(Path(arg))
        out = {
            k: case.spec[k]
            for k in ("callback", "method", "content_type", "received_at")
            if k in case.spec
        }
        out.update(run(case))
        sys.stdout.buffer.write(orjson.dumps(out, option=orjson.OPT_INDENT_2) + b"\n")
