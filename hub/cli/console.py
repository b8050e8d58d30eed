"""``hub console-url``: the console's address with its token, as ``hub serve`` prints it at
start (Jupyter's way: open it, and the console is logged in). It only reads the token:
``HUB_CONSOLE_TOKEN``, else ``console-token`` in the data directory, which the hub makes at its
first start.

``hub serve`` prints that line itself with :func:`announce`, on standard output and not
through logging: the log's masking (``hub.logs``) would hide the token, which is the point of
this one line on the operator's terminal, and of no other line."""

from __future__ import annotations

import argparse
import sys

from hub import operator
from hub.cli import remote
from hub.cli.urls import base_argument
from hub.settings import Settings


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    console = commands.add_parser(
        "console-url", help="the console's address with its token (hub serve prints it too)"
    )
    console.add_argument(
        "--base",
        type=base_argument,
        help="the hub's public URL, e.g. https://hub.example.com (default: HUB_HOST, HUB_PORT)",
    )
    console.set_defaults(run=console_url_command)


def token_of(settings: Settings) -> str | None:
    if settings.console_token is not None:
        return settings.console_token.get_secret_value()
    return operator.stored(settings.data_dir)


def console_url_command(args: argparse.Namespace) -> int:
    settings = Settings()
    token = token_of(settings)
    if token is None:
        path = settings.data_dir / operator.TOKEN_FILE
        print(
            f"no console token: HUB_CONSOLE_TOKEN is not set and {path} does not exist (has the"
            " hub run here? It makes one at its first start, in HUB_DATA_DIR)",
            file=sys.stderr,
        )
        return 1
    print(operator.console_url(remote.base_url(settings, args.base), token))
    return 0


def announce(settings: Settings, token: str, port: int) -> None:
    """The line ``hub serve`` prints once it listens: where the console is, logged in with the
    token the hub made. A token the operator set (``HUB_CONSOLE_TOKEN``) is not printed, as
    Jupyter prints no token it did not make: a deployment's standard output is often kept."""
    base = remote.base_url(settings, None, port)
    if settings.console_token is not None:
        line = f"{base}/console/ (token: HUB_CONSOLE_TOKEN; hub console-url prints the address)"
    else:
        line = operator.console_url(base, token)
    print(f"console: {line}", flush=True)
