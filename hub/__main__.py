"""``hub`` and ``python -m hub``: the command line (``hub.cli``), a Ctrl-C included.

Importing the command line takes about a second (aiohttp, pydantic, the parsers' tables), and
``hub serve`` takes as long again before its own handlers stop it gracefully: a Ctrl-C in that
time is one line (``hub: interrupted``, exit code 130), not a traceback of wherever the import
was. So the command line is imported in :func:`main`, inside the ``try`` (no cycle is hidden
there: nothing but this module imports it), and this module is the ``hub`` script's entry.
"""

import os
import sys

INTERRUPTED = 130
"""The exit code of a command stopped by Ctrl-C (128 + SIGINT), as shells give it."""


def main() -> int:
    try:
        from hub.cli import main as command_line

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


if __name__ == "__main__":
    raise SystemExit(main())
