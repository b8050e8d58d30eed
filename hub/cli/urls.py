"""``hub urls``: the callback URLs to paste into each provider's account."""

from __future__ import annotations

import argparse

from hub.app import endpoints
from hub.secrets import resolve as resolve_secrets
from hub.settings import Settings


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    urls = commands.add_parser("urls", help="the callback URLs to give each provider")
    urls.add_argument(
        "--base", required=True, help="the hub's public URL, e.g. https://hooks.example.com"
    )
    urls.set_defaults(run=urls_command)


def urls_command(args: argparse.Namespace) -> int:
    """One line per callback URL, with the provider's current secret."""
    settings = Settings()
    secrets = resolve_secrets(settings.configured_secrets(), settings.data_dir)
    base = args.base.rstrip("/")
    for endpoint in endpoints():
        methods = ",".join(endpoint.callback.methods)
        url = base + endpoint.path(secrets[endpoint.provider][0])
        print(
            f"{endpoint.provider.value:<10} {endpoint.callback.name:<13} {methods:<9} {url}"
            f"    # {endpoint.callback.summary}"
        )
    return 0
