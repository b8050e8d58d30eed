"""The hub's vocabulary: the normalized event, the request view parsers read, the reply they give.

An :class:`Event` is a CloudEvents 1.0 document. Its ``data`` (:class:`EventData`) says the same
thing for every provider: which message, which channel, what happened (``kind`` and ``state``),
whether that is the last word (``final``) and, for failures, whether trying again could help
(``failure``). Provider specifics stay available in ``status``/``error`` (code and meaning),
``details`` and ``raw`` (every field exactly as received).

Serialisation lives here and only here (:meth:`Event.to_json`), with orjson.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Final, Literal

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("naive datetime: times in the hub are always timezone-aware")
    return value.astimezone(UTC)


AwareDatetime = Annotated[datetime, AfterValidator(_aware)]
"""A timezone-aware datetime, stored in UTC."""


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


class Code(BaseModel):
    """A provider's code as received, with its meaning in English when a table knows it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    code: str
    meaning: str | None = None


class EventData(BaseModel):
    """The normalized content of an event: the same fields for every provider."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    provider: Provider
    channel: Channel
    kind: Kind
    state: State
    final: bool
    """No later status is expected for this message (for deliveries), or the event stands alone."""
    failure: Failure | None = None
    message_id: str | None = None
    """The provider's id of the message the event is about."""
    reference: str | None = None
    """The sender's own reference, given when the message was sent (tracker, refClient, JobID)."""
    related_message_id: str | None = None
    """For inbound messages: the provider's id of our message this one answers."""
    recipient: str | None = None
    """Who the message went to: E.164 for phone numbers, else the address as given."""
    sender: str | None = None
    """Who sent it: E.164 for phone numbers, else the address as given."""
    status: Code | None = None
    """The provider's own status code and its meaning."""
    error: Code | None = None
    """The provider's or operator's error code and its meaning, for failures."""
    operator: str | None = None
    text: str | None = None
    """The text of an inbound message."""
    details: dict[str, JsonValue] = Field(default_factory=dict)
    """Normalized provider-specific facts (durations, key pressed, counts...)."""
    raw: dict[str, JsonValue]
    """Every original field, exactly as received (after percent- and charset-decoding)."""
    received_at: AwareDatetime


SPEC_VERSION: Final = "1.0"
CONTENT_TYPE: Final = "application/cloudevents+json"
TYPE_PREFIX: Final = "org.callbackhub"
TYPE_VERSION: Final = "v1"
_ID_NAMESPACE: Final = uuid.UUID("6f1f5ae3-0f3c-5c8e-9d0e-3c1b2a2f0c11")


def event_type(kind: Kind) -> str:
    """The CloudEvents ``type`` of a kind: reverse-DNS and versioned."""
    return f"{TYPE_PREFIX}.{kind.value}.{TYPE_VERSION}"


def event_source(provider: Provider) -> str:
    return f"/providers/{provider.value}"


def _canonical(value: object) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


class Event(BaseModel):
    """A CloudEvents 1.0 event; build it with :meth:`Event.of`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    specversion: Literal["1.0"] = SPEC_VERSION
    id: str
    source: str
    type: str
    time: AwareDatetime
    """When the provider says it happened (the reception time when the provider does not say)."""
    subject: str | None = None
    """The provider's message id, when there is one (never a phone number)."""
    datacontenttype: Literal["application/json"] = "application/json"
    data: EventData

    @classmethod
    def of(cls, data: EventData, time: datetime | None = None) -> Event:
        """The event for ``data``, with an id that depends only on what the provider sent.

        The same callback therefore always gives the same ids, which is how a provider's retry
        is recognized (here and by consumers).
        """
        key = _canonical(
            [data.provider, data.channel, data.kind, data.state, data.message_id, data.raw]
        )
        return cls(
            id=str(uuid.uuid5(_ID_NAMESPACE, key.decode())),
            source=event_source(data.provider),
            type=event_type(data.kind),
            time=time if time is not None else data.received_at,
            subject=data.message_id,
            data=data,
        )

    @property
    def routing_key(self) -> str:
        """``<provider>.<channel>.<kind>.<state>``, lowercase words."""
        d = self.data
        return f"{d.provider.value}.{d.channel.value}.{d.kind.value}.{d.state.value}"

    def to_json(self) -> bytes:
        """The structured-mode CloudEvents JSON document (``application/cloudevents+json``)."""
        doc = self.model_dump(mode="python", exclude_none=False)
        if doc["subject"] is None:
            del doc["subject"]
        return orjson.dumps(doc, option=orjson.OPT_UTC_Z)

    @classmethod
    def from_json(cls, body: bytes | str) -> Event:
        return cls.model_validate_json(body)


class RawRequest(BaseModel):
    """What a parser sees of an HTTP callback: bytes as they arrived, and when."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    provider: Provider
    callback: str
    """The callback style named by the URL (e.g. ``delivery``, ``reply``)."""
    method: str
    query: bytes = b""
    """The raw query string, undecoded, without the ``?``."""
    body: bytes = b""
    content_type: str = ""
    """The Content-Type header, with its parameters (charset...)."""
    received_at: AwareDatetime


class Reply(BaseModel):
    """The HTTP answer a provider expects."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain"
    charset: str | None = "utf-8"


@dataclass(frozen=True, slots=True)
class Envelope:
    """An event as a broker needs it: its serialized document and the properties to route it.

    The journal keeps these columns beside the body, so forwarding never re-reads the JSON.
    """

    id: str
    type: str
    routing_key: str
    time: datetime
    body: bytes

    @classmethod
    def of(cls, event: Event) -> Envelope:
        return cls(event.id, event.type, event.routing_key, event.time, event.to_json())


def utc_now() -> datetime:
    """The only clock read of the request path; parsers get the result in the request view."""
    return datetime.now(UTC)
