"""sMsmode's ``responseList.do`` reader (``parsers.pull.smsmode``): its golden cases
(``parsers/samples/pull/smsmode/``), the request it builds, and the one event a reply gives
whether it is pushed or polled."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from core.errors import PayloadError
from core.models import Provider, RawRequest
from parsers import smsmode
from parsers.pull import smsmode as pull
from parsers.pull.base import Page
from tests.golden import load_case

SAMPLES = Path(__file__).resolve().parent.parent / "parsers" / "samples"
CASES = sorted((SAMPLES / "pull" / "smsmode").glob("*.json"))


def _request(spec: dict[str, Any], body: bytes) -> RawRequest:
    return RawRequest(
        provider=Provider.SMSMODE,
        callback=spec["method"],
        method="GET",
        query=spec["query"].encode(),
        body=body,
        content_type=spec["content_type"],
        received_at=datetime.fromisoformat(spec["received_at"]),
    )


def _page(page: Page) -> dict[str, Any]:
    return {
        "outcome": page.outcome.value,
        "reason": page.reason,
        "more": page.more,
        "retry_after": page.retry_after,
        "items": [
            {
                "key": item.key,
                "time": None if item.time is None else item.time.isoformat().replace("+00:00", "Z"),
                "events": [orjson.loads(e.to_json()) for e in item.events],
            }
            for item in page.items
        ],
    }


def test_there_are_cases_of_each_outcome_and_error() -> None:
    specs = [orjson.loads(p.read_bytes()) for p in CASES]
    outcomes = {s["page"]["outcome"] for s in specs if "page" in s}
    assert outcomes == {"items", "nothing_new", "retry_later", "credentials_refused",
                        "request_refused"}  # fmt: skip
    assert {s["error"] for s in specs if "error" in s} >= {"bad_line", "unknown_code"}


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_golden(path: Path) -> None:
    spec = orjson.loads(path.read_bytes())
    raw = _request(spec, path.with_suffix(".body").read_bytes())
    if "error" in spec:
        with pytest.raises(PayloadError) as refused:
            pull.read_response_list(raw)
        assert refused.value.reason == spec["error"]
        return
    assert _page(pull.read_response_list(raw)) == spec["page"]


def test_a_reply_pushed_and_polled_is_one_event() -> None:
    """The seed's reply callback (item 13) and the same reply in the list: one event id."""
    pushed = smsmode.parse(load_case(SAMPLES / "smsmode" / "seed-reply.json").request())
    spec = orjson.loads((SAMPLES / "pull" / "smsmode" / "example-list.json").read_bytes())
    body = (SAMPLES / "pull" / "smsmode" / "example-list.body").read_bytes()
    polled = pull.read_response_list(_request(spec, body)).items[0].events
    assert [e.id for e in pushed] == [e.id for e in polled]
    same = ("provider", "channel", "kind", "state", "final", "message_id", "related_message_id",
            "recipient", "sender", "text")  # fmt: skip
    for name in same:
        assert getattr(pushed[0].data, name) == getattr(polled[0].data, name), name
    assert polled[0].data.details == {"via": "poll"}
    assert pushed[0].data.details == {}


def test_the_request_is_the_documented_one() -> None:
    """Paris wall clock to the minute, summer and winter; the token named as a secret."""
    call = pull.response_list_call(
        "Ab1CD2efg3Hi",
        datetime(2014, 1, 1, 10, 5, 59, tzinfo=UTC),
        datetime(2014, 7, 1, 10, 5, tzinfo=UTC),
    )
    assert (call.method, call.path) == ("GET", "/responseList.do")
    assert call.query == (
        ("accessToken", "Ab1CD2efg3Hi"),
        ("startDate", "01012014-11:05"),
        ("endDate", "01072014-12:05"),
    )
    assert call.secrets == {"accessToken"}
    with pytest.raises(ValueError, match="aware"):
        pull.query_time(datetime(2014, 1, 1))  # naive: refused


def test_two_error_lines_or_a_code_among_replies_are_not_understood() -> None:
    spec = {"method": "responseList", "query": "", "content_type": "",
            "received_at": "2026-01-01T00:00:00Z"}  # fmt: skip
    for body in (b"32 | Erreur d'authentification\n31 | Erreur interne",
                 b"r-1 | 01012013-12:22 | 336 | oui | 36034 | m\n32 | Erreur"):  # fmt: skip
        with pytest.raises(PayloadError) as refused:
            pull.read_response_list(_request(spec, body))
        assert refused.value.reason == "bad_line"
