"""Parser throughput per provider, one core: ``python -m bench.parse_speed SECONDS``.

Each provider's samples are its golden cases taken from the provider's own documents (``seed-*``,
and ``pdf-*`` where the seed lost the sample) that give events. Each is parsed in a loop for
``SECONDS`` in all per provider; prints a JSON object per provider: events/s parsed, and events/s
parsed and serialized (what the hub journals).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import orjson

from parsers import REGISTRY
from tests.golden import Case, load_case

PAYLOADS = Path(__file__).resolve().parent.parent / "parsers" / "samples"


def samples() -> dict[str, list[Case]]:
    """Per provider, its documented samples that give events."""
    found: dict[str, list[Case]] = {}
    for path in sorted(PAYLOADS.glob("*/*.json")):
        if not path.stem.startswith(("seed-", "pdf-")):
            continue
        case = load_case(path)
        if case.spec.get("events"):
            found.setdefault(case.provider.value, []).append(case)
    return found


def measure(cases: list[Case], seconds: float, *, serialize: bool) -> float:
    """Events per second over ``cases``, round-robin, for about ``seconds``."""
    requests = [(REGISTRY[c.provider].parse, c.request()) for c in cases]
    for parse, request in requests:  # warm-up: code tables load on first use
        parse(request)
    events = 0
    started = time.perf_counter()
    deadline = started + seconds
    while True:
        for parse, request in requests:
            produced = parse(request)
            if serialize:
                for event in produced:
                    event.to_json()
            events += len(produced)
        now = time.perf_counter()
        if now >= deadline:
            return events / (now - started)


def run(seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for provider, cases in samples().items():
        out[provider] = {
            "samples": [c.name for c in cases],
            "parse_eps": round(measure(cases, seconds / 2, serialize=False), 1),
            "parse_json_eps": round(measure(cases, seconds / 2, serialize=True), 1),
        }
    return out


if __name__ == "__main__":
    print(orjson.dumps(run(float(sys.argv[1]))).decode())
