"""A request's way into the journal, every failure on it classified: theirs or ours.

Used by the callback handlers and by ``hub quarantine replay``, so that both tell the same
faults apart:

- anything a parser raises is the input's fault, whatever the parser's bug (a ``TypeError``, an
  ``IndexError``...): a :class:`PayloadError` with reason ``parser_error``, so the provider gets its
  negative answer once and the request goes to the quarantine, instead of a retry answer that
  brings the same input back for ever;
- so is an event the journal cannot write (an integer past 64 bits in its JSON, a time out of
  range): the ``TypeError``, ``ValueError`` or ``OverflowError`` of serializing it, before
  anything is written. The journal turns every failure of its own (disk, file, database) into
  :class:`SinkUnavailable`; anything else out of it stays a bug of ours (the retry answer);
- :class:`SinkUnavailable` stays what it is: our fault, the provider is told to retry.

The log line of such a bug names the exception's type and where it was raised, never its
message: the message of a parser's exception may quote the input (numbers, texts).
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Awaitable, Sequence
from pathlib import Path

from core.errors import HubError, PayloadError
from core.models import Event, RawRequest
from parsers.base import ParserModule
from sinks.journal import Journal

log = logging.getLogger(__name__)

PARSER_ERROR = "parser_error"


def parse(module: ParserModule, raw: RawRequest) -> list[Event]:
    """``module.parse(raw)``; any exception but a :class:`HubError` becomes a refusal."""
    try:
        return module.parse(raw)
    except HubError:
        raise
    except Exception as exc:
        raise _refusal(raw, "parser", exc) from exc


def append(journal: Journal, raw: RawRequest, events: Sequence[Event]) -> Awaitable[None]:
    """``journal.append(events)``, to await; an event it cannot serialize is a refusal (raised
    here: the journal serializes before it waits), the journal's own failures stay
    :class:`SinkUnavailable` (retry)."""
    try:
        return journal.append(events)
    except (TypeError, ValueError, OverflowError) as exc:  # orjson's, datetime's: the events'
        raise _refusal(raw, "journal", exc) from exc


def where(exc: BaseException) -> str:
    """``TypeError at parsers/dmc.py:434 in _facts``: the exception's type and its innermost
    frame (within the repository when the frame is), without its message."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return type(exc).__name__
    frame = frames[-1]
    path = Path(frame.filename)
    parts = path.parts
    for top in ("core", "parsers", "hub", "sinks"):
        if top in parts:
            path = Path(*parts[len(parts) - parts[::-1].index(top) - 1 :])
            break
    else:
        path = Path(path.name)
    return f"{type(exc).__name__} at {path}:{frame.lineno} in {frame.name}"


def _refusal(raw: RawRequest, stage: str, exc: Exception) -> PayloadError:
    location = where(exc)
    log.error(
        "%s/%s: %s error on this input, refused and quarantined: %s",
        raw.provider.value,
        raw.callback,
        stage,
        location,
    )
    return PayloadError(f"{stage} error: {location}", reason=PARSER_ERROR)
