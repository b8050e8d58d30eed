"""The request path's models (core/models.py) validate nothing when built: these tests are where
validation still happens.

Parsers build events with the models' constructors and :meth:`Event.of`, and :meth:`Event.to_json`
writes them; none of it checks a value's type (mypy checks the parsers' calls). Here every event
of every golden case is read back from its JSON with validation (:meth:`Event.from_json`) and
must come back equal, each value of exactly the type it had: so each value a parser stored has
its declared type. The bytes themselves are the golden cases' (``tests/test_golden.py``).
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core import models
from core.models import (
    Channel,
    Code,
    Event,
    EventData,
    Kind,
    NotAnEvent,
    Provider,
    RawRequest,
    State,
)
from parsers import REGISTRY
from tests.golden import Case, all_cases

CASES = [c for c in all_cases() if c.spec.get("events")]


def _events(case: Case) -> list[Event]:
    return REGISTRY[case.provider].parse(case.request())


def _types(value: object) -> object:
    """The type of ``value`` and of everything in it: models field by field, dicts key by key."""
    if isinstance(value, msgspec.Struct):
        fields = value.__struct_fields__
        return (type(value), {name: _types(getattr(value, name)) for name in fields})
    if isinstance(value, dict):
        return (dict, {key: (type(key), _types(item)) for key, item in value.items()})
    if isinstance(value, list | tuple):
        return (type(value), [_types(item) for item in value])
    return type(value)


def _check(event: Event) -> None:
    """Validates ``event``: read back from its JSON, it is the same, value for value and type for
    type (a ``"sms"`` for ``Channel.SMS``, an ``int`` code or a tuple in ``raw`` fail here)."""
    again = Event.from_json(event.to_json())
    assert again == event
    assert _types(again) == _types(event)


def _data(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "provider": Provider.ISENDPRO,
        "channel": Channel.SMS,
        "kind": Kind.DELIVERY,
        "state": State.DELIVERED,
        "final": True,
        "raw": {"id": "1", "statut": "0"},
        "received_at": datetime(2026, 1, 1, tzinfo=UTC),
    }
    fields.update(changes)
    return fields


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_golden_events_validate_strictly(case: Case) -> None:
    for event in _events(case):
        _check(event)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_golden_events_round_trip_through_json(case: Case) -> None:
    for event in _events(case):
        again = Event.from_json(event.to_json())
        assert again.to_json() == event.to_json()
        assert again.routing_key == event.routing_key


def test_the_check_catches_what_a_parser_could_get_wrong() -> None:
    """The check the golden tests rely on refuses values of the wrong type."""
    _check(Event.of(EventData(**_data())))  # and takes the right ones
    for change in (
        {"channel": "sms"},
        {"message_id": 5},
        {"final": 1},
        {"status": Code(code=5)},  # type: ignore[arg-type]
        {"raw": {"a": (1, 2)}},
        {"details": {"at": datetime(2026, 1, 1, tzinfo=UTC)}},
    ):
        event = Event.of(EventData(**_data(**change)))
        with pytest.raises((AssertionError, NotAnEvent)):
            _check(event)


def test_the_document_follows_the_one_definition_of_the_fields() -> None:
    """Keys in the order of the models' fields, ``subject`` only when there is one."""
    status = Code(code="0", meaning="ok")
    event = Event.of(EventData(**_data(message_id="7", status=status)))
    doc = orjson.loads(event.to_json())
    assert list(doc) == list(Event.__struct_fields__)
    assert list(doc["data"]) == list(EventData.__struct_fields__)
    assert doc["data"]["status"] == {"code": "0", "meaning": "ok"}
    assert doc["subject"] == "7"
    assert "subject" not in orjson.loads(Event.of(EventData(**_data())).to_json())


def test_defaults_are_fresh_and_fields_are_checked_by_name() -> None:
    bare = EventData(**_data())
    assert bare.details == {}
    assert bare.details is not EventData(**_data()).details  # a fresh dict each time
    assert Code(code="1").meaning is None
    fields = _data()
    del fields["raw"]
    with pytest.raises(TypeError, match="raw"):
        EventData(**fields)
    with pytest.raises(TypeError, match="colour"):
        EventData(**_data(colour="blue"))
    with pytest.raises(TypeError, match="code"):
        Code()  # type: ignore[call-arg]


def test_models_are_frozen() -> None:
    event = Event.of(EventData(**_data()))
    with pytest.raises(AttributeError):
        event.id = "other"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        event.data.final = False  # type: ignore[misc]


def test_times_are_brought_to_utc_and_naive_times_refused() -> None:
    paris = timezone(timedelta(hours=1))
    data = EventData(**_data(received_at=datetime(2026, 1, 1, 1, tzinfo=paris)))
    assert data.received_at == datetime(2026, 1, 1, tzinfo=UTC)
    assert data.received_at.tzinfo is UTC
    assert Event.of(data, datetime(2026, 1, 1, 2, tzinfo=paris)).time.tzinfo is UTC
    raw = RawRequest(
        provider=Provider.ISENDPRO,
        callback="delivery",
        method="GET",
        received_at=datetime(2026, 1, 1, 1, tzinfo=paris),
    )
    assert raw.received_at == datetime(2026, 1, 1, tzinfo=UTC)
    assert raw.received_at.tzinfo is UTC
    with pytest.raises(ValueError, match="naive"):
        EventData(**_data(received_at=datetime(2026, 1, 1)))
    with pytest.raises(ValueError, match="naive"):
        Event.of(EventData(**_data()), datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="naive"):
        RawRequest(
            provider=Provider.ISENDPRO,
            callback="delivery",
            method="GET",
            received_at=datetime(2026, 1, 1),
        )


def test_from_json_validates_and_names_no_value() -> None:
    event = Event.of(EventData(**_data(recipient="+33612345678")))
    doc = orjson.loads(event.to_json())
    shifted = {**doc, "time": "2026-01-01T01:00:00+01:00"}
    assert Event.from_json(orjson.dumps(shifted)).time.tzinfo is UTC
    assert Event.from_json(orjson.dumps(shifted)) == event
    phone = "+33612345678"
    bad: list[dict[str, Any]] = [
        {**doc, "time": "2026-01-01T00:00:00"},  # naive
        {**doc, "time": phone},
        {**doc, phone: "blue"},  # unknown field, named by the document
        {**doc, f"a`{phone}": "blue"},
        {**doc, "specversion": phone},
        {**doc, "data": {**doc["data"], "channel": phone}},
        {**doc, "data": {**doc["data"], "channel": f"it's {phone}"}},
        {**doc, "data": {**doc["data"], "recipient": 33612345678}},
        {**doc, "data": {**doc["data"], "status": {"code": phone, phone: 1}}},
        {key: value for key, value in doc.items() if key != "id"},
    ]
    for wrong in bad:
        with pytest.raises(NotAnEvent) as caught:
            Event.from_json(orjson.dumps(wrong))
        assert "33612345678" not in str(caught.value)  # it goes to log lines
        assert str(caught.value)  # and says something
    with pytest.raises(NotAnEvent, match=re.escape("Invalid enum value - at `$.data.channel`")):
        Event.from_json(orjson.dumps({**doc, "data": {**doc["data"], "channel": phone}}))
    with pytest.raises(
        NotAnEvent, match=re.escape("Expected `str | null`, got `int` - at `$.data.recipient`")
    ):
        Event.from_json(orjson.dumps({**doc, "data": {**doc["data"], "recipient": 33612345678}}))
    with pytest.raises(NotAnEvent):
        Event.from_json(b"not json")


def test_an_integer_past_64_bits_cannot_be_written() -> None:
    """The journal's JSON holds no larger integer: ``to_json`` refuses it (a ``TypeError``, which
    the intake turns into a refusal of the input), as orjson always did."""
    event = Event.of(EventData(**_data(details={"duration": 1 << 70})))
    with pytest.raises(TypeError):
        event.to_json()
    assert (
        b'"duration":18446744073709551615'
        in Event.of(EventData(**_data(details={"duration": (1 << 64) - 1}))).to_json()
    )


@settings(max_examples=300)
@given(st.text())
def test_event_id_is_uuid5(name: str) -> None:
    expected = str(uuid.uuid5(models._ID_NAMESPACE, name))
    assert models._event_id(name.encode()) == expected


def test_event_id_of_a_known_event() -> None:
    event = Event.of(EventData(**_data()))
    key = orjson.dumps(
        ["isendpro", "sms", "delivery", "delivered", None, {"id": "1", "statut": "0"}],
        option=orjson.OPT_SORT_KEYS,
    )
    assert event.id == str(uuid.uuid5(models._ID_NAMESPACE, key.decode()))
