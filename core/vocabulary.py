"""The hub's words: the closed sets every event is told in (provider, channel, kind, state,
failure class), the one kind of time it holds (timezone-aware, in UTC) and the free-form JSON
values of its ``details`` and ``raw``."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, TypeAlias

import msgspec


def aware(value: datetime) -> datetime:
    """``value`` in UTC; a naive datetime is refused (``ValueError``)."""
    if value.tzinfo is UTC:  # the common case (``utc_now``, JSON read back): nothing to do
        return value
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("naive datetime: times in the hub are always timezone-aware")
    return value.astimezone(UTC)


AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]
"""A timezone-aware datetime (a naive one is refused when read from JSON); the models that hold
one bring it to UTC on construction (:func:`aware`)."""

if TYPE_CHECKING:
    JsonValue: TypeAlias = (
        list["JsonValue"] | dict[str, "JsonValue"] | str | bool | int | float | None
    )
else:
    # What msgspec reads a JSON value of unknown shape into, and checks nothing else of:
    # exactly the types above (it has no recursive aliases). mypy checks the parsers' values.
    JsonValue = Any
"""Any JSON value: what ``details`` and ``raw`` hold."""


class Provider(StrEnum):
    """One slug per provider: module name, URL segment, metric label, first word of routing keys."""

    ECAMPAIGN = "ecampaign"
    DMC = "dmc"
    ISENDPRO = "isendpro"
    ECALL = "ecall"
    SMSMODE = "smsmode"


class Channel(StrEnum):
    SMS = "sms"
    MMS = "mms"
    VOICE = "voice"
    FAX = "fax"
    MAIL = "mail"
    PUSH = "push"


class Kind(StrEnum):
    """What an event is about."""

    DELIVERY = "delivery"
    """The delivery status of a message we sent changed."""
    INBOUND = "inbound"
    """A person sent us a message (an SMS reply, an answer)."""
    INTERACTION = "interaction"
    """The recipient did something with a message we sent (opened, clicked, pressed a key...)."""
    REPORT = "report"
    """A batch operation of ours finished at the provider (e.g. a contact import)."""


class State(StrEnum):
    """The unified state. Which states a kind uses is documented in the README."""

    # delivery
    ACCEPTED = "accepted"
    SCHEDULED = "scheduled"
    SENT = "sent"
    BUFFERED = "buffered"
    DELIVERED = "delivered"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"
    # inbound
    RECEIVED = "received"
    # interaction
    ANSWERED = "answered"
    LISTENED = "listened"
    KEY_PRESSED = "key_pressed"
    VOICEMAIL = "voicemail"
    OPENED = "opened"
    READ = "read"
    CLICKED = "clicked"
    UNSUBSCRIBED = "unsubscribed"
    COMPLAINED = "complained"
    AUTO_REPLIED = "auto_replied"
    # report
    COMPLETED = "completed"


class Failure(StrEnum):
    """For failed deliveries: would sending the same message again later have a chance?"""

    PERMANENT = "permanent"
    TEMPORARY = "temporary"
