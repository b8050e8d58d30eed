"""Request lines as providers write them: raw 8-bit bytes, control bytes or spaces in the URL.

aiohttp's C parser (llhttp) refuses, with a 400 before any handler runs, a request line whose
target holds a byte outside printable ASCII: a raw ``é`` (0xE9), a NUL, a tab, a space. Its
pure-Python parser (``AIOHTTP_NO_EXTENSIONS=1``) takes the 8-bit bytes but refuses the others,
and costs every request its speed. Providers do send such lines: iSendPro's URLs are ISO-8859-15
and its own sample puts bare ``%`` where spaces were; eCall says characters *may* be
percent-encoded (so they may not be), its Answer texts being Windows-1252. A 400 there is lost
or delayed input: iSendPro expects ``validation`` or ``probleme``, and retries a day later.

So the hub keeps the C parser and mends the request line before llhttp reads it: in the target
(between the method and the final `` HTTP/1.x``), every byte outside ``0x21-0x7E`` is
percent-encoded, so llhttp parses the line; the request then carries the target exactly as sent
(``request.raw_path``), which the handlers read the query from, byte for byte. A line in order,
nearly every one, costs one regular-expression match.

Only a line that starts a message is mended: at a connection's start, or once the previous
request's body is read whole (a request line pipelined into the same read as the end of the
previous body is left to llhttp). A line longer than aiohttp's limit, or that does not look like
``METHOD /target HTTP/1.x``, is left alone: llhttp refuses it as before.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web_protocol

MAX_LINE = 8190
"""aiohttp's default limit of a request line: a longer one is llhttp's to refuse."""

_LINE = re.compile(rb"([A-Z]{3,7}) (/.*) (HTTP/1\.[01]\r?)", re.DOTALL)
_UNSAFE = re.compile(rb"[^\x21-\x7e]")
_START = re.compile(rb"[A-Z]{1,7}(?: /|$| $)")
"""What the start of a request line can be (the method may not be all here either)."""

_Parser: Any = web_protocol.HttpRequestParser  # type: ignore[attr-defined]
"""aiohttp's request parser (the C one unless aiohttp runs without its extensions)."""


_PRINTABLE = bytes(range(0x21, 0x7F))
_IN_ORDER_GAPS = (b"  ", b"  \r")


def _clean(line: bytes) -> bool:
    """Nothing in the line but printable ASCII and the two spaces around the target."""
    return line.translate(None, _PRINTABLE) in _IN_ORDER_GAPS


def mend(line: bytes) -> tuple[bytes, bytes] | None:
    """A request line (without its LF) llhttp would refuse for the bytes of its target: the line
    with them percent-encoded, and the target as sent. ``None`` when there is nothing to mend."""
    if _clean(line):
        return None
    match = _LINE.fullmatch(line)
    if match is None:
        return None
    method, target, version = match.groups()
    mended = _UNSAFE.sub(lambda b: b"%%%02X" % b.group()[0], target)
    if mended == target:
        return None
    return method + b" " + mended + b" " + version, target


class MendingRequestParser(_Parser):  # type: ignore[misc]
    """aiohttp's request parser, fed request lines mended by :func:`mend`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._line_held = b""
        """The start of a request line, until its end arrives."""
        self._line_sent: str | None = None
        """The target of the line just mended, as sent, for the message it starts."""
        self._line_body: Any = None
        """The body (payload) of the last message: a new line starts once it is whole."""

    def feed_data(self, data: bytes) -> Any:
        body = self._line_body
        if body is not None and not body.is_eof():
            return self._mend_fed(super().feed_data(data))  # a body: never mended
        if self._line_held or type(data) is not bytes:
            data, self._line_held = self._line_held + bytes(data), b""
        end = data.find(b"\n")
        if end >= 0 and data.find(b"\r\n\r\n") + 4 == len(data) and _clean(data[:end]):
            return self._mend_fed(super().feed_data(data))  # one whole request, in order: most are
        return self._mend_lines(data)

    def _mend_lines(self, data: bytes) -> Any:
        """Feeds ``data``, which starts a message: its line mended, and so on for each message
        without a body that follows it."""
        found: list[Any] = []
        while True:
            end = data.find(b"\n")
            if end < 0 and len(data) <= MAX_LINE and _START.match(data):
                # a request line, not all here: wait for its end (anything else, llhttp refuses)
                self._line_held = data
                return found, False, b""
            if end >= 0 and (mended := mend(data[:end])) is not None:
                line, target = mended
                data = line + data[end:]
                self._line_sent = target.decode("utf-8", "surrogateescape")
            # Up to the end of the headers only: if the message has no body, what follows (a
            # request sent on the same connection without waiting) starts with a line too.
            head = data.find(b"\r\n\r\n") + 4
            piece, data = (data[:head], data[head:]) if head >= 4 else (data, b"")
            messages, upgraded, tail = self._mend_fed(super().feed_data(piece))
            found += messages
            body = self._line_body
            if not data or upgraded or body is None or not body.is_eof():
                if data:
                    more, upgraded, tail = self._mend_fed(super().feed_data(data))
                    found += more
                return found, upgraded, tail

    def _mend_fed(self, result: Any) -> Any:
        """The parser's messages, the first one with its target as sent when it was mended."""
        messages, upgraded, tail = result
        if messages:
            self._line_body = messages[-1][1]
            if self._line_sent is not None:
                first, payload = messages[0]
                messages = [(first._replace(path=self._line_sent), payload), *messages[1:]]
                self._line_sent = None
        return messages, upgraded, tail


def install() -> None:
    """Makes aiohttp's server parse requests with :class:`MendingRequestParser` (process-wide:
    aiohttp's ``RequestHandler`` takes no parser class). Idempotent."""
    web_protocol.HttpRequestParser = MendingRequestParser  # type: ignore[attr-defined]
