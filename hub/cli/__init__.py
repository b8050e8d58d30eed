"""The ``hub`` command line: one module per command family, and the only reader of the
environment (``Settings()``). Nothing imports it but its entry points (``hub``, ``python -m hub``).

- ``serve``: ``hub serve``, ``hub forward``;
- ``urls``: ``hub urls``;
- ``events``: ``hub tail``, ``hub replay``;
- ``journal``: ``hub journal stats``;
- ``quarantine``: ``hub quarantine list|show|replay``;
- ``subscribe``: ``hub subscribe``;
- ``send``: ``hub send`` (``samples``: what it can send); ``check``: ``hub check`` (both reach a
  running hub from outside through ``remote``).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from hub.cli import check, events, journal, quarantine, send, serve, subscribe, urls


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return int(args.run(args) or 0)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hub", description="Provider callbacks in, events out.")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    for family in (serve, events, journal, quarantine, urls, subscribe, send, check):
        family.add_commands(commands)
    return parser
