"""The hub's vocabulary: the normalized event, the request view parsers read, the reply they give.

An :class:`Event` is a CloudEvents 1.0 document. Its ``data`` (:class:`EventData`) says the same
thing for every provider: which message, which channel, what happened (``kind`` and ``state``),
whether that is the last word (``final``) and, for failures, whether trying again could help
(``failure``). Provider specifics stay available in ``status``/``error`` (code and meaning),
``details`` and ``raw`` (every field exactly as received).

Each model is a ``msgspec.Struct``: its fields are written once, in the class, and that one
definition gives the constructor (typed: mypy checks every parser's call), the field order of the
JSON document and the validation of a document read back (:meth:`Event.from_json`). Building one
validates nothing, and costs about as much as building a tuple: parsers build their values with
the declared types (mypy), and the tests validate every golden event again
(``tests/test_models_speed.py``). The one normalization on construction: times are brought to UTC.

Serialisation lives here and only here (:meth:`Event.to_json`): orjson writes the fields msgspec
gives (its bytes and its refusals, as before: see :meth:`Event.to_json`); msgspec reads a
document back, validating it (:meth:`Event.from_json`).

The words these documents are told in (``Provider``, ``Channel``, ``Kind``, ``State``,
``Failure``) are ``core.vocabulary``'s, named here too so that one import gives the whole
vocabulary.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import UTC, datetime
from typing import Final, Literal

import msgspec
import orjson
from msgspec.structs import asdict, force_setattr

from core.vocabulary import (
    AwareDatetime,
    Channel,
    Failure,
    JsonValue,
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
    "Envelope",
    "Event",
    "EventData",
    "Failure",
    "JsonValue",
    "Kind",
    "NotAnEvent",
    "Provider",
    "RawRequest",
    "Reply",
    "State",
    "event_source",
    "event_type",
    "utc_now",
]


class Code(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A provider's code as received, with its meaning in English when a table knows it."""

    code: str
    meaning: str | None = None


class EventData(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The normalized content of an event: the same fields for every provider."""

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
    details: dict[str, JsonValue] = {}  # msgspec gives each instance a fresh empty dict
    """Normalized provider-specific facts (durations, key pressed, counts...)."""
    raw: dict[str, JsonValue]
    """Every original field, exactly as received (after percent- and charset-decoding)."""
    received_at: AwareDatetime
    """In UTC (brought there on construction; a naive time is a ``ValueError``)."""

    def __post_init__(self) -> None:
        if self.received_at.tzinfo is not UTC:
            force_setattr(self, "received_at", aware(self.received_at))


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


_TYPES: Final = {kind: event_type(kind) for kind in Kind}
_SOURCES: Final = {provider: event_source(provider) for provider in Provider}


class NotAnEvent(ValueError):
    """A document :meth:`Event.from_json` cannot read as an event. The message names what is
    wrong and where (``Expected `str`, got `int` - at `$.data.message_id```), never a value nor
    a name the document chose (:func:`_without_input`): it goes to log lines."""


_PATH = re.compile(r"\$(?:\.[a-z_]+|\[[0-9]+\])*")
"""A path through the models' own fields (msgspec reports no error inside ``raw``/``details``)."""


def _without_input(error: str) -> str:
    """msgspec's message without what came from the document: values are quoted as ``repr``
    quotes them (``Invalid enum value '...'``), unknown field names in backquotes."""
    what, _, where = error.partition(" - at `")
    quoted = [at for at in (what.find("'"), what.find('"')) if at >= 0]  # repr: ' or "
    if quoted:
        what = what[: min(quoted)].rstrip()
    if what.startswith("Object contains unknown field"):
        what = "Object contains unknown field"
    where = where.removesuffix("`")
    if where and not _PATH.fullmatch(where):
        where = "…"
    return f"{what} - at `{where}`" if where else what


class Event(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A CloudEvents 1.0 event; build it with :meth:`Event.of`."""

    specversion: Literal["1.0"] = SPEC_VERSION
    id: str
    source: str
    type: str
    time: AwareDatetime
    """When the provider says it happened (the reception time when the provider does not say);
    in UTC, like every time of the hub."""
    subject: str | None = None
    """The provider's message id, when there is one (never a phone number)."""
    datacontenttype: Literal["application/json"] = "application/json"
    data: EventData

    def __post_init__(self) -> None:
        if self.time.tzinfo is not UTC:
            force_setattr(self, "time", aware(self.time))

    @classmethod
    def of(
        cls, data: EventData, time: datetime | None = None, *, identity: str | None = None
    ) -> Event:
        """The event for ``data``, with an id that depends only on what the provider sent.

        The same callback therefore always gives the same ids, which is how a provider's retry
        is recognized (here and by consumers).

        ``identity`` is the provider's own id of the one item the event stands for, for items
        that a push and a poll can both describe with different fields (a reply's id, read
        from its callback or from the provider's list of replies): the id then depends on the
        provider, channel, kind, state and that identity only, so both give the same event.
        """
        if identity is None:
            key = _canonical(
                [data.provider, data.channel, data.kind, data.state, data.message_id, data.raw]
            )
        else:
            key = _canonical([data.provider, data.channel, data.kind, data.state, identity])
        return cls(
            id=_event_id(key),
            source=_SOURCES[data.provider],
            type=_TYPES[data.kind],
            time=data.received_at if time is None else time,
            subject=data.message_id,
            data=data,
        )

    @property
    def routing_key(self) -> str:
        """``<provider>.<channel>.<kind>.<state>``, lowercase words."""
        d = self.data
        return ".".join((d.provider, d.channel, d.kind, d.state))  # StrEnums: their values

    def to_json(self) -> bytes:
        """The structured-mode CloudEvents JSON document (``application/cloudevents+json``).

        Fields in declaration order, ``subject`` left out when ``None``. msgspec's ``asdict``
        (compiled) gives each model's fields as a dict, orjson writes them and calls it back
        for the nested models: orjson writes every value, as it did before msgspec was here, so
        the bytes are the same (times with ``Z``, its way of writing floats) and so are the
        refusals of what an event must not hold (an integer past 64 bits, a value JSON cannot
        hold: a ``TypeError``, which the intake turns into a refusal of the input).
        """
        doc = asdict(self)
        if doc["subject"] is None:
            del doc["subject"]
        return orjson.dumps(doc, default=asdict, option=orjson.OPT_UTC_Z)

    @classmethod
    def from_json(cls, body: bytes | str) -> Event:
        """The event of a JSON document, validated: every field of its declared type, no field
        unknown, times timezone-aware (brought to UTC); :class:`NotAnEvent` otherwise."""
        try:
            return _DECODER.decode(body)
        except (msgspec.DecodeError, ValueError) as exc:  # ValueError: from __post_init__
            raise NotAnEvent(_without_input(str(exc))) from None


_DECODER: Final = msgspec.json.Decoder(Event)


def _canonical(value: object) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _event_id(key: bytes) -> str:
    """``str(uuid.uuid5(_ID_NAMESPACE, key.decode()))``, without building the ``UUID``: the sha1
    of the namespace and the name, in hex, the version (5) and variant (``10``) bits written in
    (RFC 4122, 4.3): the version is the 13th digit, the variant the two top bits of the 17th."""
    sha = _NAMESPACE_SHA1.copy()  # the namespace hashed once: no concatenation per event
    sha.update(key)
    h = sha.hexdigest()
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


_NAMESPACE_SHA1: Final = hashlib.sha1(_ID_NAMESPACE_BYTES, usedforsecurity=False)


_VARIANT: Final = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}
"""A hex digit with its two top bits set to the variant's ``10``."""


class RawRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a parser sees of an HTTP callback: bytes as they arrived, and when."""

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
    """In UTC (brought there on construction; a naive time is a ``ValueError``)."""

    def __post_init__(self) -> None:
        if self.received_at.tzinfo is not UTC:
            force_setattr(self, "received_at", aware(self.received_at))


class Reply(msgspec.Struct, frozen=True, kw_only=True):
    """The HTTP answer a provider expects."""

    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain"
    charset: str | None = "utf-8"


class Envelope(msgspec.Struct, frozen=True):
    """An event as a broker needs it: its serialized document and the properties to route it.

    The journal keeps these columns beside the body, so forwarding never re-reads the JSON.
    (A struct, like the models: a frozen dataclass sets each field through ``object.__setattr__``,
    which costs more than the rest of ``Envelope.of`` but the JSON.)
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
