"""Pydantic models built without validation, for values already of their declared types (what
parsers give): :func:`trusted`, and the shape of a model's fields it needs (:class:`Fields`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel

_Model = TypeVar("_Model", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Fields:
    """A model's fields for :func:`trusted`: defaults in declaration order, required names."""

    defaults: Mapping[str, Any]
    required: frozenset[str]

    @classmethod
    def of(cls, model: type[BaseModel]) -> Fields:
        fields = model.model_fields
        return cls(
            # PydanticUndefined for required fields and default factories: the caller's to give
            {name: field.get_default() for name, field in fields.items()},
            frozenset(name for name, field in fields.items() if field.is_required()),
        )


def trusted(
    cls: type[_Model],
    shape: Fields,
    fields: Mapping[str, Any],
    values: dict[str, Any] | None = None,
) -> _Model:
    """An instance of ``cls`` with ``fields`` as given, without pydantic's validation.

    Why: validating a parser's output again costs more than the rest of the parse (``raw`` and
    ``details`` go value by value through ``JsonValue``), and parsers already build every value
    with its declared type: mypy checks their calls (``Unpack`` of a ``TypedDict``) and the tests
    validate every golden event again (``tests/test_models_speed.py``). The instance is the one
    ``cls(**fields)`` gives for such values: same ``__dict__`` (same field order), same
    ``model_fields_set``. ``model_construct`` does the same in pure Python, several times slower.

    ``values``, when given, are ``fields`` completed by the caller (a default factory applied, a
    value normalized): the instance holds them, in the order of ``shape.defaults``.
    """
    if not (fields.keys() <= shape.defaults.keys() and shape.required <= fields.keys()):
        missing = sorted(shape.required - fields.keys())
        unknown = sorted(fields.keys() - shape.defaults.keys())
        raise TypeError(f"{cls.__name__}: missing {missing}, unknown {unknown}")
    instance = cls.__new__(cls)
    # what BaseModel.model_construct sets; object.__setattr__ because the models are frozen
    object.__setattr__(instance, "__dict__", {**shape.defaults, **(values or fields)})
    object.__setattr__(instance, "__pydantic_fields_set__", set(fields))
    object.__setattr__(instance, "__pydantic_extra__", None)
    object.__setattr__(instance, "__pydantic_private__", None)
    return instance
