"""The provider callbacks the hub answers: one :class:`Endpoint` per provider callback, from
the parsers' registry, with its route and URL path. Read by the wiring (``hub.app``), the
console's setup page and the command line (``hub urls``, ``hub send``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

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
