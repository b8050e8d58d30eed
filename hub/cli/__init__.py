"""The ``hub`` command line: one module per command family, and the only reader of the
environment (``Settings()``). Nothing imports it but its entry points (``hub``, ``python -m hub``).

- ``serve``: ``hub serve``, ``hub forward``;
- ``urls``: ``hub urls``;
- ``events``: ``hub tail``, ``hub replay``;
- ``journal``: ``hub journal stats``;
- ``quarantine``: ``hub quarantine list|show|replay|drop|purge``;
- ``subscribe``: ``hub subscribe``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from hub.cli import events, journal, quarantine, serve, subscribe, urls


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return int(args.run(args) or 0)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hub", description="Provider callbacks in, events out.")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    for family in (serve, events, journal, quarantine, urls, subscribe):
        family.add_commands(commands)
    return parser
