"""Logging set-up, with phone numbers and message texts masked at INFO and above.

The hub logs no message text of its own, and no request line (no access log: query strings hold
numbers and texts). The filter is the second line of defence, for whatever a library or a future
line might log: digit runs that look like phone numbers keep their last two digits, and the
values of fields that carry texts are replaced.
"""

from __future__ import annotations

import logging
import re

_EDGE_BEFORE, _EDGE_AFTER = r"(?<![\w.:/-])", r"(?![\w.:/-])"
_PHONE = re.compile(
    _EDGE_BEFORE
    + r"(?:(?:\+|%2B|00)\d{8,14}|0[1-9](?: ?\d{2}){4}|(?:33|41)[1-9]\d{8})"
    + _EDGE_AFTER
)
_FIELDS = r"msg_sms|message|text|body|info|libelle"
_QUERY_TEXT = re.compile(rf"(?i)\b({_FIELDS})=[^&\s]*")
_QUOTED_TEXT = re.compile(rf"(?i)([\"']({_FIELDS})[\"']\s*:\s*)([\"'])(.*?)\3")


def mask(text: str) -> str:
    text = _PHONE.sub(lambda m: "*" * (len(m.group(0)) - 2) + m.group(0)[-2:], text)
    text = _QUERY_TEXT.sub(lambda m: f"{m.group(1)}=***", text)
    return _QUOTED_TEXT.sub(lambda m: f"{m.group(1)}{m.group(3)}***{m.group(3)}", text)


class MaskingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.INFO:
            record.msg = mask(record.getMessage())
            record.args = None
        return True


def configure(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(MaskingFilter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
