"""Who may call a provider's callbacks: source networks, and which proxies to believe.

Each provider has an allowlist of source networks, or none (open). Behind a reverse proxy the
peer is the proxy: ``X-Forwarded-For`` is then read, but only when the peer is a configured
trusted proxy, and from the right: the first address that is not itself a trusted proxy is the
client (addresses further left were written by whoever sent the request, and prove nothing).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from core.models import Provider

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

ECALL_SOURCES = "193.93.208.200,193.93.208.149,193.93.208.153"
"""eCall's documented callback sources (seed 003, section 5.2)."""


def networks(text: str) -> tuple[Network, ...]:
    """``10.0.0.0/8, 192.0.2.7`` → networks (a bare address is a /32 or /128)."""
    return tuple(
        ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip()
    )


def _address(text: str) -> Address | None:
    try:
        return ipaddress.ip_address(text.strip().removeprefix("[").split("]")[0])
    except ValueError:
        return None


@dataclass(frozen=True)
class AccessPolicy:
    allow: Mapping[Provider, tuple[Network, ...]] = field(default_factory=dict)
    """Providers absent from the mapping are open."""
    trusted_proxies: tuple[Network, ...] = ()

    def client(self, peer: str | None, forwarded_for: Iterable[str] = ()) -> Address | None:
        """The client's address: the peer, or behind trusted proxies the first untrusted hop."""
        address = _address(peer) if peer else None
        if address is None or not self._trusted(address):
            return address
        hops = [h for header in forwarded_for for h in header.split(",") if h.strip()]
        for hop in reversed(hops):
            candidate = _address(hop)
            if candidate is None or not self._trusted(candidate):
                return candidate
            address = candidate  # a proxy of ours, who says who called it
        return address

    def restricts(self, provider: Provider) -> bool:
        """Whether the provider has an allowlist (else its client need not even be worked out)."""
        return provider in self.allow

    def allows(self, provider: Provider, client: Address | None) -> bool:
        allowed = self.allow.get(provider)
        if allowed is None:
            return True
        return client is not None and any(client in network for network in allowed)

    def _trusted(self, address: Address) -> bool:
        return any(address in network for network in self.trusted_proxies)
