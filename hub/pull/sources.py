"""The pull sources: which the settings configure, and what is known of each (``hub pull
status``, ``/api/v1/status``, the console's overview).

A provider has a pull source here once its module exists (``hub.pull.<slug>``); it polls once
its credentials are configured (``HUB_<PROVIDER>_...``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from core.models import Channel, Provider
from hub.pull import state
from hub.pull.dmc import DmcSource
from hub.pull.ecall import EcallSource
from hub.pull.ecampaign import EcampaignSource
from hub.pull.smsmode import SmsmodeSource
from hub.pull.source import Reader, Source
from hub.pull.state import State
from hub.settings import Settings

KNOWN: dict[Provider, type[Source]] = {
    Provider.SMSMODE: SmsmodeSource,
    Provider.ECALL: EcallSource,
    Provider.ECAMPAIGN: EcampaignSource,
    Provider.DMC: DmcSource,
}
"""Each provider that has a pull source, configured or not."""

VARIABLES: dict[Provider, str] = {
    Provider.SMSMODE: "HUB_SMSMODE_ACCESS_TOKEN",
    Provider.ECALL: "HUB_ECALL_USERNAME and HUB_ECALL_PASSWORD",
    Provider.ECAMPAIGN: "HUB_ECAMPAIGN_USER and HUB_ECAMPAIGN_PASSWORD",
    Provider.DMC: "HUB_DMC_SERVICE_ID, HUB_DMC_SERVICE_PASSWORD and HUB_DMC_SPACE_ID",
}
"""The variable that turns each source on."""


def configured(settings: Settings) -> list[Source]:
    """The sources whose credentials the settings give."""
    found: list[Source] = []
    if settings.smsmode_access_token is not None:
        found.append(
            SmsmodeSource(
                token=settings.smsmode_access_token.get_secret_value(),
                base_url=settings.smsmode_api_url,
                interval=settings.smsmode_pull_interval,
            )
        )
    if settings.ecall_username is not None and settings.ecall_password is not None:
        found.append(
            EcallSource(
                username=settings.ecall_username.get_secret_value(),
                password=settings.ecall_password.get_secret_value(),
                base_url=settings.ecall_api_url,
                interval=settings.ecall_pull_interval,
            )
        )
    if settings.ecampaign_user is not None and settings.ecampaign_password is not None:
        found.append(
            EcampaignSource(
                user=settings.ecampaign_user,
                password=settings.ecampaign_password.get_secret_value(),
                md5=settings.ecampaign_password_md5,
                channels=[Channel(c) for c in settings.ecampaign_channels.split(",")],
                base_url=settings.ecampaign_api_url,
                interval=settings.ecampaign_pull_interval,
            )
        )
    dmc = (settings.dmc_service_id, settings.dmc_service_password, settings.dmc_space_id)
    if dmc[0] is not None and dmc[1] is not None and dmc[2] is not None:
        found.append(
            DmcSource(
                service_id=dmc[0],
                service_password=dmc[1].get_secret_value(),
                space_id=dmc[2],
                stop_only=settings.dmc_stop_only,
                base_url=settings.dmc_api_url,
                interval=settings.dmc_pull_interval,
            )
        )
    return found


def secrets(settings: Settings) -> list[str]:
    """The sources' credentials, which no log line may hold."""
    tokens = [
        settings.smsmode_access_token,
        settings.ecall_username,
        settings.ecall_password,
        settings.ecampaign_password,
        settings.dmc_service_password,
    ]
    return [t.get_secret_value() for t in tokens if t is not None]


def readers() -> dict[tuple[Provider, str], Reader]:
    """Every polling method's reader, by provider and method (``hub quarantine replay``)."""
    return {(p, name): read for p, kind in KNOWN.items() for name, read in kind.methods.items()}


@dataclass(frozen=True)
class Status:
    provider: Provider
    configured: bool
    variable: str
    state: State
    cursor: str
    """The cursor in a few words (``Source.describe``)."""

    @property
    def polled(self) -> bool:
        return self.state.last_poll is not None

    def as_json(self) -> dict[str, object]:
        s = self.state
        return {
            "provider": self.provider.value,
            "configured": self.configured,
            "last_poll": _z(s.last_poll),
            "outcome": s.outcome or None,
            "reason": s.reason or None,
            "last_success": _z(s.last_success),
            "next_poll": _z(s.next_poll) if self.configured else None,
            "newest_item": _z(s.newest_item),
            "items": s.items,
            "failures": s.failures,
            "cursor": self.cursor,
        }


def statuses(settings: Settings) -> list[Status]:
    """Each known source, from the settings and its state on disk."""
    on = {source.provider for source in configured(settings)}
    found = []
    for provider, kind in KNOWN.items():
        current = state.load(settings.data_dir, provider.value)
        found.append(
            Status(
                provider=provider,
                configured=provider in on,
                variable=VARIABLES[provider],
                state=current,
                cursor=kind.describe(current.cursor),
            )
        )
    return found


def _z(value: str | None) -> str | None:
    """An ISO-8601 UTC time with ``Z``, to the second."""
    if value is None:
        return None
    return datetime.fromisoformat(value).strftime("%Y-%m-%dT%H:%M:%SZ")
