"""The ``hub`` command line: one module per command family, and the only reader of the
environment (``Settings()``). Nothing imports it but its entry points (``hub``, ``python -m hub``).

- ``serve``: ``hub serve``, ``hub forward``;
- ``urls``: ``hub urls``;
- ``events``: ``hub tail``, ``hub replay`` (``broker``: their side on the broker);
- ``journal``: ``hub journal stats``;
- ``quarantine``: ``hub quarantine list|show|replay|drop|purge``;
- ``pull``: ``hub pull status|once`` (the pull sources, ``hub.pull``);
- ``subscribe``: ``hub subscribe``;
- ``send``: ``hub send`` (``hub.samples``: what it can send); ``check``: ``hub check`` (both
  reach a running hub from outside through ``remote``);
- ``console``: ``hub console-url``.


What every command shares is here: a configuration the settings refuse is one line per
variable, not a traceback, and a reader gone away (``hub urls | head -2``) ends the command
quietly.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from importlib import metadata

from pydantic import ValidationError

from hub.cli import (
    check,
    console,
    events,
    journal,
    pull,
    quarantine,
    send,
    serve,
    subscribe,
    urls,
)
from hub.cli.common import configuration_errors
from hub.settings import Settings


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except ValidationError as exc:
        if exc.title != Settings.__name__:  # not the configuration's: a bug, with its traceback
            raise
        for line in configuration_errors(exc):
            print(f"hub: {line}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader left (| head): no more output, no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _version() -> str:
    try:
        return metadata.version("callback-hub")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hub", description="Provider callbacks in, events out.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    families = (serve, events, journal, quarantine, pull, urls, console, subscribe, send, check)
    for family in families:
        family.add_commands(commands)
    return parser
