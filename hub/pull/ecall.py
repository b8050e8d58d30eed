"""eCall's pull source: the SMS of the message buffer of the account's rented numbers (seed 003,
section 3.6), for an account that keeps them there rather than forwarding them to an
``Answer`` address.

The buffer is read a message at a time, the oldest first: each poll asks ``GetNextMessage``
(every rented number's); the message read is journaled, and only once its event is durable is
it taken out of the buffer (``DeleteMessage`` of its ``MessageID``, the poller's settling
request). While the buffer gave a message the next poll comes at once; an empty buffer
(ResultCode 11204) is nothing new, and the next poll comes after the interval.

A crash (or a failed ``DeleteMessage``) between the journal and the deletion leaves the message
in the buffer: the next poll reads it again and journals it again, with the same event id (made
of its ``MessageID``), which the pipeline worker marks duplicate (``HUB_DEDUP_WINDOW``). A
message is so journaled at least once, shown once. A ``DeleteMessage`` that fails backs the
source off as a failed poll does (11501, "no such message", included: a contradiction of the
buffer's, not to be hammered).

The cursor holds no position (the buffer is its own): only the ``MessageID`` last deleted, for
``hub pull status``. eCall documents no rate limit: the interval is
``HUB_ECALL_PULL_INTERVAL``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from core.models import Provider
from hub.pull.source import Advance, Ask, Cursor, Source
from parsers.pull import ecall as api
from parsers.pull.base import Outcome, Page

GET_NEXT_MESSAGE = "GetNextMessage"
DELETE_MESSAGE = "DeleteMessage"


class EcallSource(Source):
    provider = Provider.ECALL
    methods = dict(api.READERS)  # noqa: RUF012 (read only)

    def __init__(self, *, username: str, password: str, base_url: str, interval: float) -> None:
        super().__init__(base_url=base_url, interval=interval)
        self._username, self._password = username, password

    def ask(self, cursor: Cursor, now: datetime) -> Ask:
        call = api.get_next_message_call(self._username, self._password)
        return Ask(GET_NEXT_MESSAGE, call, api.read_get_next_message, status=api.read_status)

    def settle(self, cursor: Cursor, page: Page) -> Sequence[Ask]:
        """The deletion of each message read (one a poll), once its event is durable."""
        return [
            Ask(
                DELETE_MESSAGE,
                api.delete_message_call(self._username, self._password, item.key),
                api.read_delete_message,
                status=api.read_status,
            )
            for item in page.items
        ]

    def advance(self, cursor: Cursor, ask: Ask, page: Page, now: datetime) -> Advance:
        if page.outcome is not Outcome.ITEMS or not page.items:
            return Advance(cursor, again=False)
        return Advance({"last_deleted": page.items[-1].key}, again=page.more)

    @staticmethod
    def describe(cursor: Cursor) -> str:
        last = cursor.get("last_deleted")
        if not isinstance(last, str):
            return "no message deleted from the buffer yet"
        return f"the buffer read on; last message deleted {last}"
