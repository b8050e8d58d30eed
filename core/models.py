"""The hub's vocabulary: the normalized event, the request view parsers read, the reply they give.

An :class:`Event` is a CloudEvents 1.0 document. Its ``data`` (:class:`EventData`) says the same
thing for every provider: which message, which channel, what happened (``kind`` and ``state``),
whether that is the last word (``final``) and, for failures, whether trying again could help
(``failure``). Provider specifics stay available in ``status``/``error`` (code and meaning),
``details`` and ``raw`` (every field exactly as received).

Serialisation lives here and only here (:meth:`Event.to_json`), with orjson.

The words these documents are told in (``Provider``, ``Channel``, ``Kind``, ``State``,
``Failure``) are ``core.vocabulary``'s, named here too so that one import gives the whole
vocabulary; building models without validation is ``core.trusted``'s.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal, NotRequired, TypedDict, Unpack

import orjson
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from core.trusted import Fields
from core.trusted import trusted as _trusted
from core.vocabulary import (
    AwareDatetime,
    Channel,
    Failure,
    Kind,
    Provider,
    State,
    aware,
)

__all__ = [
    "CONTENT_TYPE",
    "SPEC_VERSION",
    "TYPE_PREFIX",
    "TYPE_VERSION",
    "AwareDatetime",
    "Channel",
    "Code",
    "CodeFields",
    "Envelope",
    "Event",
    "EventData",
    "EventDataFields",
    "Failure",
    "Kind",
    "Provider",
    "RawRequest",
    "Reply",
    "State",
    "event_source",
    "event_type",
    "utc_now",
]


class Code(BaseModel):
    """A provider's code as received, with its meaning in English when a table knows it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    code: str
    meaning: str | None = None

    @classmethod
    def trusted(cls, **fields: Unpack[CodeFields]) -> Code:
        """``Code(**fields)`` without validation, for parsers (see :func:`_trusted`)."""
        return _trusted(cls, _CODE_FIELDS, fields)


class CodeFields(TypedDict):
    """The fields of :class:`Code` as keyword arguments, for :meth:`Code.trusted`."""

    code: str
    meaning: NotRequired[str | None]


_CODE_FIELDS: Final = Fields.of(Code)


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

    @classmethod
    def trusted(cls, **fields: Unpack[EventDataFields]) -> EventData:
        """``EventData(**fields)`` without validation, for parsers (see :func:`_trusted`).

        ``received_at`` is still brought to UTC (cheap, and what JSON output depends on).
        """
        values: dict[str, Any] = {"details": {}, **fields}  # ``details``: a default factory
        values["received_at"] = aware(fields["received_at"])
        return _trusted(cls, _EVENT_DATA_FIELDS, fields, values)


class EventDataFields(TypedDict):
    """The fields of :class:`EventData` as keyword arguments, for :meth:`EventData.trusted`.

    A test holds it to the model's fields (names, types, which ones are required).
    """

    provider: Provider
    channel: Channel
    kind: Kind
    state: State
    final: bool
    failure: NotRequired[Failure | None]
    message_id: NotRequired[str | None]
    reference: NotRequired[str | None]
    related_message_id: NotRequired[str | None]
    recipient: NotRequired[str | None]
    sender: NotRequired[str | None]
    status: NotRequired[Code | None]
    error: NotRequired[Code | None]
    operator: NotRequired[str | None]
    text: NotRequired[str | None]
    details: NotRequired[dict[str, JsonValue]]
    raw: dict[str, JsonValue]
    received_at: datetime


_EVENT_DATA_FIELDS: Final = Fields.of(EventData)


SPEC_VERSION: Final = "1.0"
CONTENT_TYPE: Final = "application/cloudevents+json"
TYPE_PREFIX: Final = "org.callbackhub"
TYPE_VERSION: Final = "v1"
_ID_NAMESPACE: Final = uuid.UUID("6f1f5ae3-0f3c-5c8e-9d0e-3c1b2a2f0c11")
_ID_NAMESPACE_BYTES: Final = _ID_NAMESPACE.bytes


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
        is recognized (here and by consumers). Built without validation (see :func:`_trusted`):
        ``data`` is a model already and every other field is made here.
        """
        key = _canonical(
            [data.provider, data.channel, data.kind, data.state, data.message_id, data.raw]
        )
        return _trusted(
            cls,
            _EVENT_FIELDS,
            {
                "id": _event_id(key),
                "source": event_source(data.provider),
                "type": event_type(data.kind),
                "time": aware(time) if time is not None else data.received_at,
                "subject": data.message_id,
                "data": data,
            },
        )

    @property
    def routing_key(self) -> str:
        """``<provider>.<channel>.<kind>.<state>``, lowercase words."""
        d = self.data
        return f"{d.provider.value}.{d.channel.value}.{d.kind.value}.{d.state.value}"

    def to_json(self) -> bytes:
        """The structured-mode CloudEvents JSON document (``application/cloudevents+json``).

        The document is what ``model_dump`` gives (fields in declaration order, ``subject``
        left out when ``None``), written out by hand: ``model_dump`` costs more than orjson
        itself. A test holds the bytes to the ``model_dump`` ones on every golden case.
        """
        d = self.data
        data = {
            "provider": d.provider,
            "channel": d.channel,
            "kind": d.kind,
            "state": d.state,
            "final": d.final,
            "failure": d.failure,
            "message_id": d.message_id,
            "reference": d.reference,
            "related_message_id": d.related_message_id,
            "recipient": d.recipient,
            "sender": d.sender,
            "status": None if d.status is None else _code_doc(d.status),
            "error": None if d.error is None else _code_doc(d.error),
            "operator": d.operator,
            "text": d.text,
            "details": d.details,
            "raw": d.raw,
            "received_at": d.received_at,
        }
        doc: dict[str, object] = {
            "specversion": self.specversion,
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "time": self.time,
        }
        if self.subject is not None:
            doc["subject"] = self.subject
        doc["datacontenttype"] = self.datacontenttype
        doc["data"] = data
        return orjson.dumps(doc, option=orjson.OPT_UTC_Z)

    @classmethod
    def from_json(cls, body: bytes | str) -> Event:
        return cls.model_validate_json(body)


_EVENT_FIELDS: Final = Fields.of(Event)


def _code_doc(code: Code) -> dict[str, str | None]:
    return {"code": code.code, "meaning": code.meaning}


def _event_id(key: bytes) -> str:
    """``str(uuid.uuid5(_ID_NAMESPACE, key.decode()))``, without building the ``UUID``: sha1 of
    the namespace and the name, with the version (5) and variant bits set (RFC 4122, 4.3)."""
    digest = bytearray(hashlib.sha1(_ID_NAMESPACE_BYTES + key, usedforsecurity=False).digest())
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    h = digest[:16].hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


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
