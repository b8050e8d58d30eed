"""Callback URL secrets: a random path segment per provider, compared in constant time.

Providers cannot sign their requests (iSendPro even wants an URL without a password), so each
provider's callback URLs carry a secret: ``/callbacks/<provider>/<secret>/<callback>``. Two
secrets may be accepted at once, the new and the old, while a provider's account is updated.

Where they come from: ``HUB_SECRET_<PROVIDER>`` (comma-separated, first = current) when set;
otherwise ``secrets.json`` in the data directory, created with a fresh 128-bit secret for each
provider the first time the hub runs there (:func:`resolve`). Commands that only show them
(``hub urls``) read them with :func:`stored`, which never writes: secrets made up elsewhere would
be URLs the hub does not know.
"""

from __future__ import annotations

import hmac
import os
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path

import orjson

from core.models import Provider

SECRETS_FILE = "secrets.json"
Secrets = Mapping[Provider, tuple[str, ...]]


def new_secret() -> str:
    """128 random bits, URL-safe."""
    return secrets.token_urlsafe(16)


def resolve(configured: Mapping[Provider, Sequence[str]], data_dir: Path) -> Secrets:
    """The accepted secrets of every provider: configured ones first, else the data directory's
    file (completed and written back when a provider has none yet)."""
    path = data_dir / SECRETS_FILE
    stored: dict[str, list[str]] = orjson.loads(path.read_bytes()) if path.exists() else {}
    missing = [p for p in Provider if not configured.get(p) and not stored.get(p.value)]
    if missing:
        for provider in missing:
            stored[provider.value] = [new_secret()]
        write_private(path, orjson.dumps(stored, option=orjson.OPT_INDENT_2))
    return {p: tuple(configured.get(p) or stored[p.value]) for p in Provider}


def stored(
    configured: Mapping[Provider, Sequence[str]], data_dir: Path
) -> tuple[dict[Provider, tuple[str, ...]], list[Provider]]:
    """The secrets the hub would accept, read without writing anything: the configured ones,
    else the data directory's file; and the providers that have none (no file, or no entry)."""
    path = data_dir / SECRETS_FILE
    kept: dict[str, list[str]] = orjson.loads(path.read_bytes()) if path.exists() else {}
    found = {}
    for provider in Provider:
        accepted = configured.get(provider) or kept.get(provider.value)
        if accepted:
            found[provider] = tuple(accepted)
    return found, [p for p in Provider if p not in found]


def write_private(path: Path, data: bytes) -> None:
    """Writes a file only its owner can read (mode 0600), whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(path)


def matches(candidate: str, accepted: Sequence[str]) -> bool:
    """Whether ``candidate`` is one of ``accepted``, in time independent of where they differ."""
    given = candidate.encode()
    found = False
    for secret in accepted:
        found |= hmac.compare_digest(given, secret.encode())
    return found
