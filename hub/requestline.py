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

Only a line that starts a message is mended, never a body: the parser frames the messages of a
connection (line and headers held until they are all here, then a body of ``Content-Length``
bytes); after a message it cannot frame so (a chunked body) it mends no more on that connection.
A line that does not look like ``METHOD /target HTTP/1.x`` is left alone: llhttp refuses it as
before.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web_protocol

MAX_HEAD = 16384
"""The most of a message's start (line and headers) held until it is all here; a longer one
goes to llhttp as it comes (aiohttp refuses a line or a header over 8190 bytes)."""

_LINE = re.compile(rb"([A-Z]{3,7}) (/.*) (HTTP/1\.[01]\r?)", re.DOTALL)
_UNSAFE = re.compile(rb"[^\x21-\x7e]")
_START = re.compile(rb"[A-Z]{1,7}(?: /|$| $)")
"""What the start of a request line can be (the method may not be all here either)."""

_IN_ORDER = re.compile(rb"[A-Z]{3,7} [\x21-\x7e]+ HTTP/1\.[01]\r\n")
"""A request line with nothing to mend, CRLF-ended, at the start of the data."""
_LENGTH = b"\r\nContent-Length: "
"""The header as nearly every client writes it (any other spelling takes the general path)."""

_Parser: Any = web_protocol.HttpRequestParser  # type: ignore[attr-defined]
"""aiohttp's request parser (the C one unless aiohttp runs without its extensions)."""
_feed = _Parser.feed_data


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
    """aiohttp's request parser, fed request lines mended by :func:`mend`.

    It keeps track of where messages start: it holds a message's line and headers until they
    are all here, mends the line, feeds them, then feeds exactly the ``Content-Length`` of its
    body, and so on. A message it cannot frame so (a chunked body, an upgrade, headers over
    :data:`MAX_HEAD`) ends the mending for the connection: the rest goes to llhttp as it comes.

    Nearly every read is one whole message whose line is in order (a provider's GET, or a POST
    sent in one write): it goes to llhttp in one call after a regular-expression match and a
    search for the head's end (a callgrind of the parser alone: 8,000 instructions over
    llhttp's own 24,800 a GET, 12,200 before; a POST 13,800, 21,300 before).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._mend_held = b""
        """The start of a message, until its headers are all here."""
        self._mend_body_left = 0
        """Bytes of the current message's body still to come (its Content-Length)."""
        self._mend_off = False
        """The mending has stopped for this connection: everything goes to llhttp as it comes."""
        self._mend_sent: str | None = None
        """The target of the line just mended, as sent, for the message it starts."""

    def feed_data(self, data: bytes) -> Any:
        """The common read first: one whole message, its line in order (a GET; a POST's head,
        or its head and exactly its ``Content-Length`` of body), fed to llhttp as it is."""
        if self._mend_off:
            return _feed(self, data)
        if self._mend_body_left or self._mend_held or type(data) is not bytes:
            return self._mend_feed(data)
        if _IN_ORDER.match(data) is None:
            return self._mend_feed(data)
        head = data.find(b"\r\n\r\n") + 4
        if head == len(data):  # the head alone: its body, if any, comes next
            found = _feed(self, data)
            messages, upgraded, _ = found
            if len(messages) == 1 and not upgraded and messages[0][1].is_eof():
                return found
            return self._mend_body(found)
        at = data.find(_LENGTH, 0, head) + len(_LENGTH)
        if at < len(_LENGTH) or len(data) - head != _digits(data, at):
            return self._mend_feed(data)
        found = _feed(self, data)  # the head and its whole body
        messages, upgraded, _ = found
        if len(messages) != 1 or upgraded or not messages[0][1].is_eof():
            self._mend_off = True  # an upgrade (with a body), say: what follows is not ours
        return found

    def _mend_body(self, found: Any) -> Any:
        """After a whole head fed alone, whose message is not all here: its body is fed as it
        comes, never mended; a body not framed by its ``Content-Length`` ends the mending."""
        messages, upgraded, _ = found
        length = None if len(messages) != 1 or upgraded else _body_length(messages[0][0])
        if length is None:
            self._mend_off = True
        else:
            self._mend_body_left = length
        return found

    def _mend_feed(self, data: bytes) -> Any:
        """Any read: a body's rest, a start not all here, lines to mend, several messages."""
        found: list[Any] = []
        if self._mend_body_left:  # a body: fed as it comes, never mended
            body, data = data[: self._mend_body_left], data[self._mend_body_left :]
            self._mend_body_left -= len(body)
            messages, upgraded, tail = super().feed_data(body)
            if not data and not upgraded:
                return messages, upgraded, tail
            found = [*messages]
            if upgraded:  # the body of a request asking for an upgrade: what follows is not ours
                return self._mend_stop(found, data, upgraded, tail)
        if self._mend_held or type(data) is not bytes:
            data, self._mend_held = self._mend_held + bytes(data), b""
        while data:  # at the start of a message
            head = data.find(b"\r\n\r\n") + 4
            if head < 4:
                if len(data) <= MAX_HEAD and _START.match(data):
                    self._mend_held = data  # a request, not all here: wait for the rest
                    break
                return self._mend_stop(found, data)  # anything else is llhttp's to refuse
            end = data.find(b"\n")
            if not _clean(data[:end]) and (mended := mend(data[:end])) is not None:
                line, target = mended
                data = line + data[end:]
                head += len(line) - end
                self._mend_sent = target.decode("utf-8", "surrogateescape")
            piece, data = (data, b"") if head == len(data) else (data[:head], data[head:])
            messages, upgraded, tail = super().feed_data(piece)
            if self._mend_sent is not None and messages:
                first, payload = messages[0]
                messages = [(first._replace(path=self._mend_sent), payload), *messages[1:]]
                self._mend_sent = None
            found += messages
            if upgraded or len(messages) != 1:
                return self._mend_stop(found, data, upgraded, tail)
            message, payload = messages[0]
            if not payload.is_eof():
                length = _body_length(message)
                if length is None:
                    return self._mend_stop(found, data)
                self._mend_body_left = length
                if not data:
                    break
                more, upgraded, tail = self._mend_feed(data)  # its body, then what follows
                return [*found, *more], upgraded, tail
        return found, False, b""

    def _mend_stop(
        self, found: list[Any], data: bytes, upgraded: bool = False, tail: bytes = b""
    ) -> Any:
        """No more mending on this connection: ``data`` and all that follows go to llhttp."""
        self._mend_off = True
        if upgraded:  # what follows the headers is no longer HTTP: the tail
            return found, upgraded, tail + data
        if data:
            messages, upgraded, tail = super().feed_data(data)
            found = [*found, *messages]
        return found, upgraded, tail


def _body_length(message: Any) -> int | None:
    """The body's length by its ``Content-Length``, or ``None`` for a body not so framed."""
    length = message.headers.get("Content-Length", "")
    return None if message.chunked or not length.isdigit() else int(length)


def _digits(data: bytes, at: int) -> int:
    """The decimal number at ``data[at:]`` up to its CR, or -1."""
    value = data[at : data.find(b"\r", at)]
    return int(value) if value.isdigit() else -1


def install() -> None:
    """Makes aiohttp's server parse requests with :class:`MendingRequestParser` (process-wide:
    aiohttp's ``RequestHandler`` takes no parser class). Idempotent."""
    web_protocol.HttpRequestParser = MendingRequestParser  # type: ignore[attr-defined]
