"""``hub urls``: the callback URLs to paste into each provider's account.

It only reads the secrets (``HUB_SECRET_<PROVIDER>``, else the data directory's
``secrets.json``, which the hub creates at its first start): run where the hub has never run,
it says so instead of making up secrets the hub would not know.
"""

from __future__ import annotations

import argparse
import sys

from hub.endpoints import callback_urls, valid_base
from hub.secrets import SECRETS_FILE, stored
from hub.settings import Settings


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    urls = commands.add_parser("urls", help="the callback URLs to give each provider")
    urls.add_argument(
        "--base",
        required=True,
        type=base_argument,
        help="the hub's public URL, e.g. https://hooks.example.com",
    )
    urls.set_defaults(run=urls_command)


def base_argument(text: str) -> str:
    """An http(s) URL with a host, for ``argparse``: the URLs are pasted as printed."""
    if not valid_base(text):
        raise argparse.ArgumentTypeError(f"{text!r}: expected http(s)://host[:port][/path]")
    return text


def urls_command(args: argparse.Namespace) -> int:
    """One line per callback URL, with the provider's current secret, and what it is for."""
    settings = Settings()
    secrets, missing = stored(settings.configured_secrets(), settings.data_dir)
    if missing:
        path = settings.data_dir / SECRETS_FILE
        where = f"in {path}" if path.exists() else f"at {path} (no such file)"
        print(
            f"no secret for {', '.join(p.value for p in missing)} {where}, "
            f"nor in HUB_SECRET_<PROVIDER>: has the hub run here? It makes them at its first "
            "start, in HUB_DATA_DIR",
            file=sys.stderr,
        )
        return 1
    for item in callback_urls(args.base, secrets):
        endpoint = item.endpoint
        methods = ",".join(item.methods)
        print(
            f"{endpoint.provider.value:<10} {endpoint.callback.name:<13} {methods:<9} {item.url}"
            f"    # {endpoint.callback.summary}"
        )
    return 0
