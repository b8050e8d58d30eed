"""The contract between a provider's polling methods and the hub's pull sources.

A pull module (``parsers/pull/<slug>.py``) is pure. For each polling method it gives:

- a builder of the request, ``<method>_call(...) -> Call``: the HTTP request exactly as the
  provider's document shows it (path under the API's base address, query or form fields). The
  source sends it; secrets are named in ``Call.secrets`` so that nothing logs them;
- a reader of the answer, ``read_<method>(response: RawRequest) -> Page``: the response's bytes
  as received (``RawRequest.callback`` names the method, ``body`` and ``content_type`` are the
  response's, ``query`` the request's without its secrets, ``received_at`` when it arrived), and
  out the items read, each with the events a push of the same item would give (same vocabulary,
  fields, and event id where push and pull describe the same item), ``details["via"] = "poll"``.

Every answer maps to an :class:`Outcome`; a response the reader cannot understand raises
:class:`core.errors.PayloadError`, like a callback parser (the source quarantines its bytes).

An HTTP status can answer before the body does (a 401, a 503 with a proxy's page): each module
also gives ``read_status(status: int) -> Page | None``, the page such a status means by the
provider's document, or ``None`` when the body is to be read (a 2xx; DMC's SOAP faults come with
a 500). :func:`http_status` is the rule where a document says nothing of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from core.models import Event


class Outcome(StrEnum):
    """What an answer of the provider means for the source that asked."""

    ITEMS = "items"
    """Items were read (the page may hold more than the source asked for)."""
    NOTHING_NEW = "nothing_new"
    """An answer with nothing in it (eCall's empty buffer, code 11204; an empty list)."""
    RETRY_LATER = "retry_later"
    """A temporary failure at the provider (or an answer that says to come back): back off."""
    CREDENTIALS_REFUSED = "credentials_refused"
    """The provider refuses the configured credentials: back off long, say so loudly."""
    RATE_LIMITED = "rate_limited"
    """Asked too often (DMC's SupervisionWS: one call per minute): wait the provider's time."""
    REQUEST_REFUSED = "request_refused"
    """The provider refuses the request as asked (a date range too wide, a bad parameter): the
    source must ask differently (a narrower window), not the same again."""


@dataclass(frozen=True, slots=True)
class Call:
    """One HTTP request to a provider's API, as its document shows it."""

    method: str
    """``GET`` or ``POST``."""
    path: str
    """Under the API's base address (``HUB_<PROVIDER>_API_URL``), e.g.
    ``/Api/Cache/GetNextMessage``."""
    query: tuple[tuple[str, str], ...] = ()
    form: tuple[tuple[str, str], ...] = ()
    """Sent as ``application/x-www-form-urlencoded`` when not empty."""
    body: bytes = b""
    """Sent as is (with ``content_type``) when ``form`` is empty (a SOAP envelope, say)."""
    content_type: str = ""
    secrets: frozenset[str] = frozenset()
    """Names of the query/form fields that hold credentials: never logged, never journaled
    (and the bytes of ``body`` are never logged: they may hold them)."""
    headers: tuple[tuple[str, str], ...] = ()
    """Request headers the document asks for (a SOAP 1.1 ``SOAPAction``); none secret."""


@dataclass(frozen=True, slots=True)
class Item:
    """One item of an answer: one reply, one blacklist entry, one buffered message."""

    key: str
    """The provider's id of the item (eCall's ``MessageID``, sMsmode's ``response_ID``), or a
    hash of its content when the provider gives none (eCampaign): how a source knows it read
    the item already, and what it passes back to delete it at the provider."""
    time: datetime | None
    """The item's time at the provider, in UTC: high-water marks and lag are made of it."""
    events: Sequence[Event]


@dataclass(frozen=True, slots=True)
class Page:
    """What one answer says."""

    outcome: Outcome
    items: Sequence[Item] = ()
    reason: str = ""
    """A short label for metrics and logs when the outcome is not ``items``/``nothing_new``
    (``code_11204``, ``bad_credentials``...): never the provider's data."""
    retry_after: float | None = None
    """Seconds the provider asks to wait, when it says."""
    more: bool = False
    """The provider says there is more to read right away (a full page, a non-empty buffer)."""
    extra: dict[str, str] = field(default_factory=dict)
    """Anything else a source needs from the answer (a next-page token...), by name."""


def http_status(status: int) -> Page | None:
    """What an HTTP status says before the body is read, where the provider's document says
    nothing of its own: ``None`` for a 2xx (read the body); 401 and 403 refuse the credentials,
    429 is a rate limit, 408 and 5xx a temporary failure, any other status refuses the request."""
    if 200 <= status < 300:
        return None
    if status in (401, 403):
        return Page(Outcome.CREDENTIALS_REFUSED, reason=f"http_{status}")
    if status == 429:
        return Page(Outcome.RATE_LIMITED, reason="http_429")
    if status == 408 or status >= 500:
        return Page(Outcome.RETRY_LATER, reason=f"http_{status}")
    return Page(Outcome.REQUEST_REFUSED, reason=f"http_{status}")
