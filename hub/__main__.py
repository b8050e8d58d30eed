"""``hub`` and ``python -m hub``: the command line (``hub.cli``), a Ctrl-C included.

Importing the command line takes about a second (aiohttp, pydantic, the parsers' tables), and
``hub serve`` takes as long again before its own handlers stop it gracefully: a Ctrl-C in that
time is one line (``hub: interrupted``, exit code 130), not a traceback of wherever the import
was. So the command line is imported in :func:`main`, inside the ``try`` (no cycle is hidden
there: nothing but this module imports it), and this module is the ``hub`` script's entry.

A Ctrl-C that raises in the middle of the import can land inside an extension module's own
initialization (pydantic's core, say): a full `make test` once saw the process then end by
SIGSEGV, with no line. So while the command line is imported, Ctrl-C is only noted; it is
acted on (the same line, the same exit code) once the import is over.
"""

import os
import signal
import sys
from collections.abc import Callable

INTERRUPTED = 130
"""The exit code of a command stopped by Ctrl-C (128 + SIGINT), as shells give it."""


def main() -> int:
    try:
        command_line = _imported_between_interrupts()
        return command_line()
    except KeyboardInterrupt:
        print("hub: interrupted", file=sys.stderr)
        # Exit now, with the code said, not through the interpreter's finalization: under load a
        # full `make test` saw this line printed and yet the process ended by the signal itself
        # (-2, not 130), twice, its cause not found. The interrupt came up through every frame
        # (their finally blocks ran): what is skipped is the interpreter's own exit.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(INTERRUPTED)


def _imported_between_interrupts() -> Callable[[], int]:
    """``hub.cli.main``, imported with Ctrl-C noted rather than raised (where Python's own
    handler is installed); ``KeyboardInterrupt`` once the import is over if one came."""
    noted: list[int] = []
    shielded = signal.getsignal(signal.SIGINT) is signal.default_int_handler
    if shielded:
        signal.signal(signal.SIGINT, lambda number, frame: noted.append(number))
    try:
        from hub.cli import main as command_line
    finally:
        if shielded:
            signal.signal(signal.SIGINT, signal.default_int_handler)
    if noted:
        raise KeyboardInterrupt
    return command_line


if __name__ == "__main__":
    raise SystemExit(main())
