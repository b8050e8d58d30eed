"""The providers' code tables, ``parsers/tables/<slug>.toml``: code → unified state, final,
failure class, English meaning and the provider's own words."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from functools import cache
from importlib import resources

from pydantic import BaseModel, ConfigDict, ValidationError

from core.models import Channel, Code, Failure, Kind, Provider, State

FAILURES = frozenset({State.FAILED, State.EXPIRED, State.CANCELLED})
"""The states of a delivery that did not happen."""


class TableEntry(BaseModel):
    """One code of a provider's table, transcribed from its seed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    state: State
    final: bool
    failure: Failure | None = None
    kind: Kind | None = None
    """Overrides the callback's kind (a voice 'key pressed' is an interaction, not a delivery)."""
    channel: Channel | None = None
    """Overrides the callback's channel where the code tells it."""
    meaning: str
    """English meaning."""
    fr: str
    """The seed's own words."""


Tables = Mapping[str, Mapping[str, TableEntry]]


@cache
def load_tables(provider: Provider) -> Tables:
    """``parsers/tables/<slug>.toml``: table name → code → entry. Read once, validated."""
    text = resources.files("parsers").joinpath("tables", f"{provider.value}.toml").read_text()
    try:
        return {
            name: {code: TableEntry.model_validate(entry) for code, entry in table.items()}
            for name, table in tomllib.loads(text).items()
        }
    except ValidationError as exc:  # a broken table is a bug of ours: fail loudly at import
        raise RuntimeError(f"invalid code table for {provider.value}: {exc}") from exc


UNKNOWN = TableEntry(state=State.UNKNOWN, final=False, meaning="", fr="")
"""What a code no table knows gives: state ``unknown``, not final (``entry or UNKNOWN``)."""


def code_of(value: str, entry: TableEntry | None) -> Code:
    """The code as received, with its table's meaning when the table knows it."""
    return Code(code=value, meaning=entry.meaning if entry else None)
