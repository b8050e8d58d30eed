"""Logging set-up: no callback secret, phone number or message text in any log line.

The hub logs no message text of its own, and no request line (no access log: query strings hold
numbers and texts). Libraries do: aiohttp quotes a malformed request line whole in the exception
it logs (``Invalid char in url query: b'GET /callbacks/isendpro/<secret>/reply?tel=...'``). So
the filter, on the one handler every logger writes to, masks every record whatever logged it, at
every level, in all it holds: the message with its arguments, the exception's text (traceback and
message) and the stack.

What is masked:

- a callback URL's secret and whole query: ``/callbacks/isendpro/***/reply?***`` (the query runs
  to the end of the line: a malformed one may hold raw spaces; so does a path that is not one of
  ours);
- the configured secrets themselves, wherever they appear (:func:`hide`);
- passwords in URLs (``amqp://user:***@host``), ``Authorization``/``Bearer`` values and
  ``token=``, ``password=``... fields (the SSE endpoint takes ``?token=``);
- digit runs that look like phone numbers, but for their last two digits;
- the values of fields that carry texts (``msg_sms=``, ``"text": "..."``...).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

_EDGE_BEFORE, _EDGE_AFTER = r"(?<![\w.:/-])", r"(?![\w.:/-])"
_PHONE = re.compile(
    _EDGE_BEFORE
    + r"(?:(?:\+|%2B|00)\d{8,14}|0[1-9](?: ?\d{2}){4}|(?:33|41)[1-9]\d{8})"
    + _EDGE_AFTER
)
_FIELDS = r"msg_sms|message|text|body|info|libelle"
_QUERY_TEXT = re.compile(rf"(?i)\b({_FIELDS})=[^&'\"\r\n]*")
_QUOTED_TEXT = re.compile(rf"(?i)([\"']({_FIELDS})[\"']\s*:\s*)([\"'])(.*?)\3")
_CALLBACK_URL = re.compile(
    r"(/callbacks/[^/\s'\"]*/)[^/\s'\"?]+(/[A-Za-z_]{1,20}(?![^?\s'\"]))?([^\r\n]*)"
)
"""A callback URL: its provider, secret, callback name (a short word, kept), and the rest of
the line (query, or whatever a malformed path holds)."""
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s/]+@")
_CREDENTIALS = re.compile(
    r"(?i)\b(authorization[\"']?\s*[:=]\s*[\"']?)[^\r\n\"',]+"
    r"|\b(bearer\s+)[\w.~+/=-]{8,}"
    r"|\b((?:token|password|passwd|secret|keyid)=)[^&\s'\"]+"
)

_hidden: set[str] = set()


def hide(secrets: Iterable[str]) -> None:
    """Masks these values (the callback secrets) wherever a log line holds them."""
    _hidden.update(s for s in secrets if len(s) >= 8)  # a short one would mask ordinary words


def _callback_url(match: re.Match[str]) -> str:
    rest = match.group(3)
    tail = ("?***" if rest.startswith("?") else "***") if rest else ""
    return f"{match.group(1)}***{match.group(2) or ''}{tail}"


def mask(text: str) -> str:
    for secret in _hidden:
        if secret in text:
            text = text.replace(secret, "***")
    if "/callbacks/" in text:
        text = _CALLBACK_URL.sub(_callback_url, text)
    if "://" in text:
        text = _URL_PASSWORD.sub(r"\1***@", text)
    text = _CREDENTIALS.sub(lambda m: f"{m.group(1) or m.group(2) or m.group(3)}***", text)
    text = _PHONE.sub(lambda m: "*" * (len(m.group(0)) - 2) + m.group(0)[-2:], text)
    text = _QUERY_TEXT.sub(lambda m: f"{m.group(1)}=***", text)
    return _QUOTED_TEXT.sub(lambda m: f"{m.group(1)}{m.group(3)}***{m.group(3)}", text)


_TRACEBACKS = logging.Formatter()


class MaskingFilter(logging.Filter):
    """Masks a record whole, in place: message and arguments, exception text, stack."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # arguments that do not fit the message: logging would say so
            message = f"{record.msg!s} {record.args!r}"
        record.msg, record.args = mask(message), None
        if record.exc_info:
            # formatted here, masked, and the exception dropped, so that no formatter down the
            # line writes its unmasked text
            record.exc_text = _TRACEBACKS.formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = mask(record.exc_text)
        if record.stack_info:
            record.stack_info = mask(record.stack_info)
        return True


def configure(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(MaskingFilter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
