"""sMsmode's ``responseList.do`` reader (``parsers.pull.smsmode``): its golden cases
(``parsers/samples/pull/smsmode/``), the request it builds, and the one event a reply gives
whether it is pushed or polled; and the source's windows (``hub.pull.smsmode``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from core.errors import PayloadError
from core.models import Provider, RawRequest
from hub.pull.smsmode import MAX_WINDOW, OVERLAP, SmsmodeSource
from hub.pull.source import Ask
from parsers import smsmode
from parsers.pull import smsmode as pull
from parsers.pull.base import Item, Outcome, Page
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


# -- the source's cursor policy (hub.pull.smsmode), pure ---------------------------------------


def _source() -> SmsmodeSource:
    return SmsmodeSource(token="t", base_url="https://api.smsmode.com/http/1.6", interval=60)


def _window(ask: Ask) -> tuple[str, str]:
    query = dict(ask.call.query)
    return query["startDate"], query["endDate"]


def test_the_first_window_starts_an_overlap_before_now_and_ends_a_minute_after() -> None:
    now = datetime(2026, 1, 15, 9, 30, 20, tzinfo=UTC)
    ask = _source().ask({}, now)
    assert _window(ask) == ("15012026-10:20", "15012026-10:31")
    assert ask.until == now and ask.method == "responseList"


def test_the_autumn_hour_read_twice_still_gives_a_window_that_moves_forward() -> None:
    """02:55 summer time to 02:02 winter time: the start goes back an hour (the overlap's
    replies are read again, and remembered)."""
    since = datetime(2024, 10, 27, 0, 55, tzinfo=UTC)
    now = datetime(2024, 10, 27, 1, 2, tzinfo=UTC)
    start, end = _window(_source().ask({"since": since.isoformat()}, now))
    assert (start, end) == ("27102024-01:45", "27102024-02:03")


def test_after_a_long_stop_windows_of_a_day_catch_up_at_once() -> None:
    source = _source()
    now = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)
    cursor = {"since": (now - timedelta(days=3)).isoformat()}
    ask = source.ask(cursor, now)
    assert ask.until == now - timedelta(days=3) - OVERLAP + MAX_WINDOW
    page = Page(Outcome.NOTHING_NEW)
    moved = source.advance(cursor, ask, page, now)
    assert moved.again and moved.cursor["since"] == ask.until.isoformat()
    last = source.ask({"since": (now - timedelta(minutes=1)).isoformat()}, now)
    assert not source.advance({}, last, page, now).again


def test_replies_of_the_overlap_are_remembered_then_forgotten() -> None:
    source = _source()
    now = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)
    items = [Item("a", now - timedelta(minutes=5), []), Item("b", now - timedelta(days=1), [])]
    ask = source.ask({}, now)
    cursor = source.advance({}, ask, Page(Outcome.ITEMS, items), now).cursor
    assert set(cursor["seen"]) == {"a"}  # "b" is older than any window to come
    again = Page(Outcome.ITEMS, [Item("a", items[0].time, []), Item("c", now, [])])
    assert [i.key for i in source.fresh(cursor, again)] == ["c"]
    later = now + timedelta(hours=2)
    moved = source.advance(cursor, source.ask(cursor, later), Page(Outcome.NOTHING_NEW), later)
    cursor = moved.cursor
    assert cursor["seen"] == {}
    refused = Page(Outcome.CREDENTIALS_REFUSED, reason="authentication_error")
    assert source.advance(cursor, ask, refused, later).cursor == cursor
