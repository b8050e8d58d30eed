"""Errors of the hub. Each carries a ``reason``: a short, bounded label for metrics and logs.

    HubError
    ├── PayloadError        their fault: the callback cannot be understood.
    │                       The provider gets its negative answer; the request is quarantined.
    ├── SinkUnavailable     our fault: the event could not be made safe (broker down, journal
    │                       unwritable). The provider gets the answer that makes it retry.
    └── IndexUnavailable    the shared index cannot be reached (the database away): the
                            pipeline worker's batch waits in the journal, tried again; a
                            lookup of the API or the console is a 503.

Code branches on the type and on ``reason``, never on the message text.
"""

from __future__ import annotations


class HubError(Exception):
    reason: str = "error"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class PayloadError(HubError):
    """The provider sent something the parser cannot turn into events."""

    reason = "invalid_payload"


class SinkUnavailable(HubError):
    """Events could not be made safe (journal unwritable, broker down); nothing is acknowledged.

    ``done`` counts the leading events of the batch that were made safe all the same.
    """

    reason = "sink_unavailable"

    def __init__(self, message: str, *, reason: str | None = None, done: int = 0) -> None:
        super().__init__(message, reason=reason)
        self.done = done


class IndexUnavailable(HubError):
    """The shared index (``HUB_INDEX_URL``) could not record a batch (nothing of it was
    decided, the worker tries it again: its events wait in the journal), or answer a lookup."""

    reason = "index_unavailable"
