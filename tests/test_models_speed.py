"""The request path's shortcuts in core/models.py give what the plain pydantic way gives.

Parsers build events with :meth:`EventData.trusted`, :meth:`Code.trusted` and :meth:`Event.of`,
none of which validates, and :meth:`Event.to_json` writes the document without ``model_dump``.
These tests are where validation still happens: every event of every golden case is validated
again, strictly, and serialized the slow way for comparison.
"""

from __future__ import annotations

import typing
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from core import models
from core.models import Channel, Code, Event, EventData, Kind, Provider, State
from parsers import REGISTRY
from tests.golden import Case, all_cases

CASES = [c for c in all_cases() if c.spec.get("events")]


def _events(case: Case) -> list[Event]:
    return REGISTRY[case.provider].parse(case.request())


def _fields(model: BaseModel) -> dict[str, Any]:
    """A model's values as they are stored, nested models as dicts: validation input."""
    return {
        name: _fields(value) if isinstance(value, BaseModel) else value
        for name, value in model.__dict__.items()
    }


def _to_json_by_model_dump(event: Event) -> bytes:
    """What :meth:`Event.to_json` was before it built the document by hand."""
    doc = event.model_dump(mode="python", exclude_none=False)
    if doc["subject"] is None:
        del doc["subject"]
    return orjson.dumps(doc, option=orjson.OPT_UTC_Z)


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
    """Each value a parser stored has the declared type: strict validation takes it unchanged.

    (A ``"sms"`` for ``Channel.SMS``, an ``int`` code or a tuple in ``raw`` are refused.)
    """
    for event in _events(case):
        assert Event.model_validate(_fields(event), strict=True) == event


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_golden_events_round_trip_through_json(case: Case) -> None:
    for event in _events(case):
        again = Event.from_json(event.to_json())
        assert again == event
        assert again.to_json() == event.to_json()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_to_json_is_model_dump_byte_for_byte(case: Case) -> None:
    for event in _events(case):
        assert event.to_json() == _to_json_by_model_dump(event)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_trusted_is_the_validated_model(case: Case) -> None:
    """The same instance as the validating constructors give: values, field order, fields set."""
    for event in _events(case):
        data = event.data
        given_fields = {name: getattr(data, name) for name in data.model_fields_set}
        for name in ("status", "error"):
            code = given_fields.get(name)
            if code is not None:
                given_fields[name] = Code(**{n: getattr(code, n) for n in code.model_fields_set})
        validated = EventData(**given_fields)
        assert validated == data
        assert list(validated.__dict__) == list(data.__dict__)
        assert validated.model_fields_set == data.model_fields_set
        slow = Event(
            id=event.id,
            source=event.source,
            type=event.type,
            time=event.time,
            subject=event.subject,
            data=validated,
        )
        assert slow == event
        assert list(slow.__dict__) == list(event.__dict__)
        assert slow.model_fields_set == event.model_fields_set


def test_trusted_fills_defaults_like_the_constructor() -> None:
    fields = _data(details={"a": 1}, status=Code.trusted(code="0"))
    fast, slow = EventData.trusted(**fields), EventData(**fields)
    assert fast == slow
    assert fast.model_fields_set == slow.model_fields_set
    bare = EventData.trusted(**_data())
    assert bare == EventData(**_data())
    assert bare.details == {}
    assert bare.details is not EventData.trusted(**_data()).details  # a fresh dict each time
    assert Code.trusted(code="1") == Code(code="1")
    assert Code.trusted(code="1").model_fields_set == {"code"}


def test_trusted_brings_received_at_to_utc_and_refuses_naive_times() -> None:
    paris = timezone(timedelta(hours=1))
    data = EventData.trusted(**_data(received_at=datetime(2026, 1, 1, 1, tzinfo=paris)))
    assert data.received_at == datetime(2026, 1, 1, tzinfo=UTC)
    assert data.received_at.tzinfo is UTC
    assert Event.of(data, datetime(2026, 1, 1, 2, tzinfo=paris)).time.tzinfo is UTC
    with pytest.raises(ValueError, match="naive"):
        EventData.trusted(**_data(received_at=datetime(2026, 1, 1)))
    with pytest.raises(ValueError, match="naive"):
        Event.of(EventData.trusted(**_data()), datetime(2026, 1, 1))


def test_trusted_refuses_missing_and_unknown_fields() -> None:
    fields = _data()
    del fields["raw"]
    with pytest.raises(TypeError, match="raw"):
        EventData.trusted(**fields)
    with pytest.raises(TypeError, match="colour"):
        EventData.trusted(**_data(colour="blue"))
    with pytest.raises(TypeError, match="code"):
        Code.trusted()  # type: ignore[call-arg]


def test_strict_validation_catches_what_a_parser_could_get_wrong() -> None:
    """The check the golden tests rely on refuses values of the wrong type."""
    for change in (
        {"channel": "sms"},
        {"message_id": 5},
        {"final": 1},
        {"status": Code.trusted(code=5)},  # type: ignore[arg-type]
        {"raw": {"a": (1, 2)}},
        {"details": {"at": datetime(2026, 1, 1, tzinfo=UTC)}},
    ):
        event = Event.of(EventData.trusted(**_data(**change)))
        with pytest.raises(ValidationError):
            Event.model_validate(_fields(event), strict=True)


@pytest.mark.parametrize(
    ("fields", "model"),
    [(models.EventDataFields, EventData), (models.CodeFields, Code)],
)
def test_keyword_types_follow_the_model(fields: type, model: type[BaseModel]) -> None:
    """The ``TypedDict`` of ``trusted`` names the model's fields, with their types."""
    hints = typing.get_type_hints(fields, include_extras=True)
    assert list(hints) == list(model.model_fields)
    for name, hint in hints.items():
        info = model.model_fields[name]
        optional = typing.get_origin(hint) is typing.NotRequired
        assert optional == (not info.is_required()), name
        assert (typing.get_args(hint)[0] if optional else hint) == info.annotation, name


@settings(max_examples=300)
@given(st.text())
def test_event_id_is_uuid5(name: str) -> None:
    expected = str(uuid.uuid5(models._ID_NAMESPACE, name))
    assert models._event_id(name.encode()) == expected


def test_event_id_of_a_known_event() -> None:
    event = Event.of(EventData.trusted(**_data()))
    key = orjson.dumps(
        ["isendpro", "sms", "delivery", "delivered", None, {"id": "1", "statut": "0"}],
        option=orjson.OPT_SORT_KEYS,
    )
    assert event.id == str(uuid.uuid5(models._ID_NAMESPACE, key.decode()))
