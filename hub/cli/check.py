"""``hub check``: a running hub's configuration seen from outside, one line per check.

The hub is reached as a provider reaches it, and nothing is kept: each callback URL gets a
``HEAD`` (the hub's probe: 200 once the secret and the source pass, 404 for a wrong secret, 403
for a source its allowlist refuses), readiness is ``/health/ready``, the broker is
``hub_broker_connected`` in ``/metrics``, the shared index ``hub_shared_index_connected``. Exit
status 1 when any check fails."""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass

import orjson

from hub.cli import remote
from hub.endpoints import Endpoint, endpoints
from hub.secrets import SECRETS_FILE, Secrets
from hub.settings import Settings


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    check = commands.add_parser(
        "check",
        help="check a running hub from outside: URLs, secrets, allowlists, broker, shared index",
    )
    check.add_argument("--url", help="the hub's base URL (default: HUB_HOST and HUB_PORT's)")
    check.add_argument("--timeout", type=float, default=10.0, help="seconds for each answer")
    check.set_defaults(run=check_command)


@dataclass(frozen=True)
class Result:
    ok: bool
    what: str

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'}  {self.what}"


def check_command(args: argparse.Namespace) -> int:
    settings = Settings()
    base = remote.base_url(settings, args.url)
    failed = False
    for result in _checks(settings, base, args.timeout):
        print(result.line(), flush=True)
        failed |= not result.ok
    return 1 if failed else 0


def _checks(settings: Settings, base: str, timeout: float) -> list[Result]:
    try:
        live = remote.fetch(base, "/health/live", timeout)
    except remote.Unreachable as exc:
        return [Result(False, f"hub: {exc}")]
    results = [Result(live.status == 200, f"hub answers at {base} (/health/live {live.status})")]
    results.append(_ready(base, timeout))
    try:
        secrets = remote.read_secrets(settings)
    except remote.NoSecrets as exc:
        results.append(Result(False, f"secrets: {exc}"))
    else:
        results += [_endpoint(settings, base, timeout, e, secrets) for e in endpoints()]
    results.append(_broker(settings, base, timeout))
    results.append(_shared_index(settings, base, timeout))
    return results


def _ready(base: str, timeout: float) -> Result:
    try:
        answer = remote.fetch(base, "/health/ready", timeout)
        checks = orjson.loads(answer.body)
    except remote.Unreachable as exc:
        return Result(False, f"ready: {exc}")
    except orjson.JSONDecodeError:
        return Result(False, f"ready: /health/ready answered {answer.status}, not its JSON")
    failing = [name for name, passed in checks.items() if not passed]
    if answer.status == 200 and not failing:
        return Result(True, f"ready (/health/ready: {', '.join(checks)})")
    return Result(False, f"not ready (/health/ready {answer.status}: {', '.join(failing)} false)")


def _endpoint(
    settings: Settings, base: str, timeout: float, endpoint: Endpoint, secrets: Secrets
) -> Result:
    """The URL answers the probe; its secret is the one here; the source as configured."""
    provider = endpoint.provider
    name = f"{provider.value} {endpoint.callback.name}"
    secret_from = (
        f"HUB_SECRET_{provider.value.upper()}"
        if settings.configured_secrets().get(provider)
        else f"{settings.data_dir / SECRETS_FILE}"
    )
    policy = settings.access_policy()
    try:
        with remote.Connection(base, timeout) as conn:
            headers, _ = remote.allowed_source(policy, provider, conn.source)
            answer = conn.request("HEAD", endpoint.path(secrets[provider][0]).encode(), headers)
            source = headers.get("X-Forwarded-For", conn.source)
    except remote.Unreachable as exc:
        return Result(False, f"{name}: {exc}")
    allow = f"HUB_ALLOW_{provider.value.upper()}"
    expected = policy.allows(provider, policy.client(conn.source, headers.values()))
    if answer.status == 404:
        return Result(False, f"{name}: 404, the hub has another secret than {secret_from}'s")
    if answer.status == 200 and expected:
        return Result(True, f"{name}: answers, secret as in {secret_from}")
    if answer.status == 403 and not expected:
        return Result(
            True, f"{name}: answers, secret as in {secret_from}; {source} refused, as {allow} says"
        )
    if answer.status == 403:
        return Result(False, f"{name}: 403, the hub refuses {source}, which {allow} here allows")
    if answer.status == 200:
        return Result(False, f"{name}: the hub took {source}, which {allow} here refuses")
    return Result(False, f"{name}: HEAD answered {answer.status} {answer.reason}, not 200")


@dataclass(frozen=True)
class Link:
    """A connection of the hub's that a gauge of its ``/metrics`` says up (1) or down (0)."""

    what: str
    gauge: str
    setting: str
    none: str
    """What it means that the hub exports no such gauge (none configured there)."""
    down: str


BROKER = Link(
    "broker",
    "hub_broker_connected",
    "HUB_RABBITMQ_URL",
    "events stay in the journal",
    "not connected",
)
SHARED_INDEX = Link(
    "shared index",
    "hub_shared_index_connected",
    "HUB_INDEX_URL",
    "this hub's own index alone",
    "not reachable",
)


def _broker(settings: Settings, base: str, timeout: float) -> Result:
    return _link(BROKER, bool(settings.rabbitmq_url), base, timeout)


def _shared_index(settings: Settings, base: str, timeout: float) -> Result:
    return _link(SHARED_INDEX, settings.index_url is not None, base, timeout)


def _link(link: Link, configured_here: bool, base: str, timeout: float) -> Result:
    """``link`` as the hub's gauge says it, against whether it is configured here."""
    try:
        answer = remote.fetch(base, "/metrics", timeout)
    except remote.Unreachable as exc:
        return Result(False, f"{link.what}: {exc}")
    if answer.status != 200:
        return Result(False, f"{link.what}: /metrics answered {answer.status}")
    found = re.search(rb"^" + link.gauge.encode() + rb" (\S+)$", answer.body, re.MULTILINE)
    if found is None:
        if configured_here:
            return Result(False, f"{link.what}: {link.setting} is set here, the hub has none")
        return Result(True, f"{link.what}: none ({link.none})")
    if float(found.group(1)) == 1:
        return Result(True, f"{link.what}: connected ({link.gauge} 1)")
    return Result(False, f"{link.what}: {link.down} ({link.gauge} 0); events wait in the journal")
