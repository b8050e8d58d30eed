"""The parser module contract, and the replies of providers that only want an HTTP status.

A parser module is pure: ``parse(request) -> list[Event]`` with no I/O and no clock, and the
provider's acknowledgement contract in ``ack``/``nack``/``retry``. What parsers share for reading
lives in modules named for it: ``text`` (charsets, queries), ``xml``, ``phones``, ``times`` and
``tables`` (the code tables).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from core.errors import HubError
from core.models import Event, Provider, RawRequest, Reply


@dataclass(frozen=True, slots=True)
class Callback:
    """One callback style of a provider: its URL segment, HTTP methods and what it carries."""

    name: str
    methods: tuple[str, ...]
    summary: str


class ParserModule(Protocol):
    """What ``parsers/<slug>.py`` provides. The registry in ``parsers/__init__.py`` lists them."""

    PROVIDER: Provider
    CALLBACKS: Sequence[Callback]

    def parse(self, request: RawRequest) -> list[Event]: ...

    def ack(self, events: list[Event]) -> Reply: ...

    def nack(self, error: HubError) -> Reply: ...

    def retry(self, error: HubError) -> Reply: ...


# -- replies shared by providers that only want an HTTP status --------------------------------

OK_REPLY = Reply(status=200, body=b"OK")
"""A 200 with a short non-empty body: what providers that 'want a 200' are happy with."""


def ok(events: list[Event]) -> Reply:
    """The acknowledgement of providers that want a 200."""
    return OK_REPLY


def bad_request(error: HubError) -> Reply:
    """Their fault: a 400 naming the reason (a label, never the provider's data)."""
    return Reply(status=400, body=f"rejected: {error.reason}".encode())


def unavailable(error: HubError) -> Reply:
    """Our fault: a 503 so that the provider retries later."""
    return Reply(status=503, body=f"unavailable: {error.reason}".encode())
