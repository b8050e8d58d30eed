"""The provider callbacks the hub answers, and the URLs to give each provider for them.

``hub.app`` routes every :func:`endpoints` entry (the console's setup page and ``hub send`` read
them too); ``hub urls`` prints :func:`callback_urls` and
the operator's API serves them (``/api/v1/urls``): one list, wherever it is shown.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from core.models import Provider
from parsers import REGISTRY
from parsers.base import Callback, ParserModule


@dataclass(frozen=True)
class Endpoint:
    provider: Provider
    module: ParserModule
    callback: Callback

    @property
    def route(self) -> str:
        """The route pattern (also the ``route`` label of HTTP metrics: no secret in it)."""
        return self.path("{secret}")

    def path(self, secret: str) -> str:
        return f"/callbacks/{self.provider.value}/{secret}/{self.callback.name}"


def endpoints() -> Iterator[Endpoint]:
    """Every provider callback the hub answers, in registry order."""
    for provider, module in REGISTRY.items():
        for callback in module.CALLBACKS:
            yield Endpoint(provider, module, callback)


@dataclass(frozen=True)
class CallbackUrl:
    """One URL to paste into a provider's account, with its current secret."""

    endpoint: Endpoint
    url: str

    @property
    def methods(self) -> tuple[str, ...]:
        return self.endpoint.callback.methods


def valid_base(text: str) -> bool:
    """An http(s) URL with a host: the hub's public address, the URLs being pasted as made."""
    try:
        url = urlsplit(text)
    except ValueError:  # an unbalanced [ of an IPv6 host
        return False
    return url.scheme in ("http", "https") and bool(url.netloc)


def callback_urls(base: str, secrets: Mapping[Provider, Sequence[str]]) -> list[CallbackUrl]:
    """Every callback's URL under ``base`` with its provider's current secret (the first one
    accepted), in registry order; a provider without a secret is left out."""
    root = base.rstrip("/")
    return [
        CallbackUrl(endpoint, root + endpoint.path(secrets[endpoint.provider][0]))
        for endpoint in endpoints()
        if secrets.get(endpoint.provider)
    ]
