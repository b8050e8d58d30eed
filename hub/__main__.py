"""``hub`` and ``python -m hub``: the command line (``hub.cli``), a Ctrl-C included.

Importing the command line takes about a second (aiohttp, pydantic, the parsers' tables), and
``hub serve`` takes as long again before its own handlers stop it gracefully: a Ctrl-C in that
time is one line (``hub: interrupted``, exit code 130), not a traceback of wherever the import
was. So the command line is imported in :func:`main`, inside the ``try`` (no cycle is hidden
there: nothing but this module imports it), and this module is the ``hub`` script's entry.
"""

import sys

INTERRUPTED = 130
"""The exit code of a command stopped by Ctrl-C (128 + SIGINT), as shells give it."""


def main() -> int:
    try:
        from hub.cli import main as command_line

        return command_line()
    except KeyboardInterrupt:
        print("hub: interrupted", file=sys.stderr)
        return INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
