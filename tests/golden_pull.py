"""Golden cases of the pull readers: ``parsers/samples/pull/<slug>/<case>.json`` beside
``<case>.body``, the provider's response bytes as its document shows them.

Every provider folder present is loaded; its module is ``parsers.pull.<slug>``, whose
``READERS`` maps a method's name to its reader. The JSON says how the answer came and what the
reader must make of it::

    {"method": "GetNextMessage", "content_type": "text/xml", "query": "MobileNumber=...",
     "received_at": "2026-01-01T00:00:00Z",
     "page": {"outcome": "items", "reason": "", "more": false, "retry_after": null,
              "items": [{"key": "...", "time": "...Z or null", "events": [<CloudEvents>]}]}}
                                                   # or "error": "<PayloadError reason>"

``method`` is what the source gives in ``RawRequest.callback`` (eCampaign's names the channel:
``sms/getResponses``); ``query`` the request's query without its secrets; ``http_method``
(optional, ``GET``) the request's. ``extra`` is in the page only when the reader gives some.

As in ``tests.golden``: cases named ``seed-*`` hold a sample of the provider's document byte for
byte (``tests/test_provider_docs.py`` checks them against the documents, opt-in), the others are
the hub's own. ``python -m tests.golden_pull PATH.json`` prints what the reader makes of a case,
to help write one; check what it prints against the document by hand before it becomes the
expected result.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson

from core.errors import PayloadError
from core.models import Provider, RawRequest
from parsers.pull.base import Page

PULL_SAMPLES = Path(__file__).resolve().parent.parent / "parsers" / "samples" / "pull"


@dataclass(frozen=True)
class PullCase:
    provider: Provider
    name: str
    spec: dict[str, Any]
    body: bytes

    @property
    def id(self) -> str:
        return f"{self.provider.value}/{self.name}"

    def response(self) -> RawRequest:
        return RawRequest(
            provider=self.provider,
            callback=self.spec["method"],
            method=self.spec.get("http_method", "GET"),
            query=self.spec.get("query", "").encode(),
            body=self.body,
            content_type=self.spec.get("content_type", ""),
            received_at=datetime.fromisoformat(self.spec["received_at"]),
        )

    def reader(self) -> Callable[[RawRequest], Page]:
        readers: Mapping[str, Callable[[RawRequest], Page]] = module(self.provider).READERS
        return readers[self.spec["method"]]


def module(provider: Provider) -> ModuleType:
    return importlib.import_module(f"parsers.pull.{provider.value}")


def load_case(path: Path) -> PullCase:
    body = path.with_suffix(".body")
    if not body.is_file():
        raise ValueError(f"{path}: needs a .body beside it")
    return PullCase(
        provider=Provider(path.parent.name),
        name=path.stem,
        spec=orjson.loads(path.read_bytes()),
        body=body.read_bytes(),
    )


def all_cases() -> list[PullCase]:
    return [load_case(p) for p in sorted(PULL_SAMPLES.glob("*/*.json"))]


def page_json(page: Page) -> dict[str, Any]:
    """A page in the shape of the cases' ``page``; events as their documents."""
    out: dict[str, Any] = {
        "outcome": page.outcome.value,
        "reason": page.reason,
        "more": page.more,
        "retry_after": page.retry_after,
        "items": [
            {
                "key": item.key,
                "time": None if item.time is None else _utc(item.time),
                "events": [orjson.loads(event.to_json()) for event in item.events],
            }
            for item in page.items
        ],
    }
    if page.extra:
        out["extra"] = dict(page.extra)
    return out


def _utc(when: datetime) -> str:
    return orjson.dumps(when, option=orjson.OPT_UTC_Z).decode()[1:-1]


def run(case: PullCase) -> dict[str, Any]:
    """What the reader makes of a case, in the shape of the case's JSON."""
    try:
        page = case.reader()(case.response())
    except PayloadError as exc:
        return {"error": exc.reason}
    return {"page": page_json(page)}


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        case = load_case(Path(arg))
        keys = ("method", "http_method", "content_type", "query", "received_at")
        out = {k: case.spec[k] for k in keys if k in case.spec}
        out.update(run(case))
        sys.stdout.buffer.write(orjson.dumps(out, option=orjson.OPT_INDENT_2) + b"\n")
