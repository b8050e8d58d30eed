"""What ``hub send`` and ``hub check`` share: where the running hub is, the secrets it should
have (read from the data directory, never written), one HTTP exchange sent byte for byte as a
provider sends it, and the source address a provider's allowlist lets a test use."""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import urlsplit

import orjson

from core.models import Provider
from hub.access import AccessPolicy
from hub.secrets import SECRETS_FILE, Secrets
from hub.settings import Settings

USER_AGENT = "callback-hub (hub send / hub check)"


class Unreachable(Exception):
    """No answer from the hub: refused, timed out, not HTTP. Its text is one line for a person."""


class NoSecrets(Exception):
    """Some provider has no secret here: neither ``HUB_SECRET_<PROVIDER>`` nor the file."""


def base_url(settings: Settings, given: str | None, port: int | None = None) -> str:
    """``--url``, else the hub this environment configures (``HUB_HOST``, ``HUB_PORT`` or the
    ``port`` it listens on), asked on loopback when it listens on every address."""
    if given:
        return given.rstrip("/")
    host = settings.host or "127.0.0.1"
    with contextlib.suppress(ValueError):
        listening = ipaddress.ip_address(host)
        if listening.is_unspecified:  # every address: ask on loopback
            host = "127.0.0.1" if listening.version == 4 else "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port if port is None else port}"


def read_secrets(settings: Settings) -> Secrets:
    """Each provider's accepted secrets, as ``hub urls`` prints them: ``HUB_SECRET_<PROVIDER>``,
    else the data directory's ``secrets.json``. Unlike the hub, never creates nor completes it:
    a new secret would only be wrong."""
    configured = settings.configured_secrets()
    path = settings.data_dir / SECRETS_FILE
    try:
        stored: dict[str, list[str]] = orjson.loads(path.read_bytes()) if path.exists() else {}
    except (OSError, orjson.JSONDecodeError) as exc:
        raise NoSecrets(f"cannot read {path}: {exc}") from None
    found = {p: tuple(configured.get(p) or stored.get(p.value) or ()) for p in Provider}
    missing = [p.value for p, accepted in found.items() if not accepted]
    if missing:
        raise NoSecrets(
            f"no secret for {', '.join(missing)}: no HUB_SECRET_<PROVIDER> and nothing in {path}"
            " (HUB_DATA_DIR must be the hub's data directory)"
        )
    return found


def masked(path: str) -> str:
    """A callback path with its secret hidden: ``/callbacks/isendpro/***/delivery``."""
    parts = path.split("/")
    if len(parts) > 3 and parts[1] == "callbacks":
        parts[3] = "***"
    return "/".join(parts)


@dataclass(frozen=True)
class Answer:
    status: int
    reason: str
    headers: Mapping[str, str]
    body: bytes


class Connection:
    """One connection to the hub, for one request (``Connection: close``). ``source`` is this
    end's address: the peer address the hub sees on a direct connection."""

    def __init__(self, base: str, timeout: float) -> None:
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise Unreachable(f"{base}: not an http:// or https:// URL")
        self.netloc = parts.netloc
        self.prefix = parts.path.rstrip("/")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            sock = socket.create_connection((parts.hostname, port), timeout=timeout)
            if parts.scheme == "https":
                sock = ssl.create_default_context().wrap_socket(
                    sock, server_hostname=parts.hostname
                )
        except OSError as exc:
            raise Unreachable(f"no answer at {base}: {exc.strerror or exc}") from None
        self._sock = sock
        self.source: str = sock.getsockname()[0]

    def request(
        self, method: str, target: bytes, headers: Mapping[str, str], body: bytes = b""
    ) -> Answer:
        """Sends ``target`` (path and query) exactly as given, and reads the answer whole."""
        lines = [f"Host: {self.netloc}", f"User-Agent: {USER_AGENT}", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if body or method not in ("GET", "HEAD"):
            lines.append(f"Content-Length: {len(body)}")
        head = b"%s %s%s HTTP/1.1\r\n" % (method.encode(), self.prefix.encode(), target)
        head += "".join(line + "\r\n" for line in lines).encode("latin-1") + b"\r\n"
        try:
            self._sock.sendall(head + body)
            response = http.client.HTTPResponse(self._sock, method=method)
            response.begin()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise Unreachable(f"no answer from the hub: {exc or type(exc).__name__}") from None
        return Answer(response.status, response.reason, dict(response.getheaders()), data)

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def fetch(base: str, path: str, timeout: float) -> Answer:
    """GET one of the hub's own endpoints (``/health/ready``, ``/metrics``)."""
    with Connection(base, timeout) as conn:
        return conn.request("GET", path.encode(), {})


def allowed_source(
    policy: AccessPolicy, provider: Provider, source: str
) -> tuple[dict[str, str], str | None]:
    """Headers that make the hub see a source the provider's allowlist takes, and a note when
    none can: nothing when ``source`` is allowed (or the provider open); behind a trusted proxy
    (``source`` in ``HUB_TRUSTED_PROXIES``), ``X-Forwarded-For`` with an allowed address."""
    if not policy.restricts(provider) or policy.allows(provider, policy.client(source)):
        return {}, None
    for network in policy.allow[provider]:
        candidate = (
            network.network_address
            if network.num_addresses == 1
            else next(network.hosts(), network.network_address)
        )
        if policy.client(source, [str(candidate)]) == candidate:
            return {"X-Forwarded-For": str(candidate)}, None
    name = f"HUB_ALLOW_{provider.value.upper()}"
    return {}, (
        f"{provider.value} callbacks are only taken from {name}, and {source} (this machine) is not"
        f" in it: for a test, add it ({name}=...,{source}) or send through a trusted proxy"
    )
