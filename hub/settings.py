"""Configuration, from ``HUB_*`` environment variables, read by ``hub.cli`` alone."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.models import Provider
from core.topics import DEFAULT_EXCHANGE
from hub.access import ECALL_SOURCES, AccessPolicy, networks
from hub.server import Limits

_DAY = 86_400.0
ECAMPAIGN_CHANNELS = ("sms", "fax", "mail")
"""The channels of eCampaign's feedback methods (p.9)."""


def _http_base(value: str) -> str:
    """An API's base address the HTTP client can use (else every poll would fail)."""
    url = urlsplit(value)
    if url.scheme not in ("http", "https") or not url.hostname or url.query:
        raise ValueError("expected an http:// or https:// base address, without a query")
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HUB_", frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    """Address to listen on (``0.0.0.0`` in containers)."""
    port: int = Field(default=8080, ge=0, le=65535)
    data_dir: Path = Path("var")
    """Where the journal lives."""
    rabbitmq_url: str | None = None
    """``amqp://user:password@host:5672/vhost``; unset: events stay in the local journal."""
    exchange: str = DEFAULT_EXCHANGE
    index_url: SecretStr | None = None
    """``postgresql://user:password@host:5432/database``: the shared index of every replica
    (``sinks.index_pg``), which the pipeline worker writes beside its local one and which
    deduplicates across replicas; unset: the local index alone. Secret: never logged."""
    index_timeout: float = Field(default=10.0, gt=0)
    """Seconds a batch of the pipeline worker waits for the shared index (a connection, a
    statement) before the worker pauses, its events waiting in the journal, and tries again."""
    publish_timeout: float = Field(default=5.0, gt=0)
    """Seconds to wait for the broker's confirms before telling the provider to retry."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    dedup_window: float = Field(default=7 * _DAY, gt=0)
    """Seconds during which a callback sent again is recognized as a retry (journaled, marked
    duplicate by the pipeline worker, never published). The longest retry schedule in the
    providers' documents is iSendPro's: three more tries, a day apart."""
    retention: float = Field(default=14 * _DAY, gt=0)
    """Seconds an event stays in the journal (once forwarded, with a broker)."""
    quarantine_retention: float = Field(default=14 * _DAY, gt=0)
    """Seconds a quarantined request stays once replayed (counted from its replay). Requests not
    replayed stay until they are, or are dropped (``hub quarantine drop``): a provider's input
    that gave no event is never deleted unasked."""
    journal_max_bytes: int | None = Field(default=None, gt=0)
    """A cap on everything the hub keeps on disk for events (the journal's database, WAL and
    WAL index; the pipeline worker's index and cursor files, as they stand at each commit):
    past it, providers are told to retry (never a full disk)."""
    journal_commit_timeout: float = Field(default=10.0, gt=0)
    """Seconds a callback waits for its commit (a disk that stalls) before it is told to retry;
    a commit under way for longer makes the hub not ready."""
    forward_batch: int = Field(default=512, gt=0)
    """Events the pipeline worker processes at once (and has in flight to the broker)."""
    forwarder: Literal["process", "inline"] = "process"
    """Where the pipeline worker runs, with a broker or without: a process of its own
    (``hub forward``, started and stopped by ``hub serve``), or the hub's event loop (one
    process, fewer callbacks a second)."""
    drain_timeout: float = Field(default=10.0, ge=0)
    """On SIGTERM, seconds the worker may keep processing and forwarding before it exits."""

    events_token: SecretStr | None = None
    """Bearer token of the Server-Sent Events endpoint ``/events``; unset: no such endpoint."""
    console_token: SecretStr | None = None
    """Bearer token of the operator's API (``/api/v1/``) and console (``/console/``); unset: the
    hub makes one on its first start and keeps it in the data directory (``console-token``, mode
    0600), like the URL secrets."""
    stream: bool = True
    """Keep every event in the RabbitMQ stream ``<exchange>.stream`` for new subscribers (it is
    bound with ``#``: with it, nothing is left for the unrouted queue)."""
    stream_max_age: str = "7D"
    """Retention of the RabbitMQ stream that keeps every event for new subscribers (x-max-age:
    a number and a unit among Y M D h m s)."""
    stream_max_bytes: int = Field(default=2_000_000_000, gt=0)
    """Size cap of that stream."""
    secret_ecampaign: SecretStr | None = None
    """Callback URL secrets, comma-separated (the first is the current one; a second one is
    accepted too during a rotation). Unset: ``secrets.json`` in the data directory."""
    secret_dmc: SecretStr | None = None
    secret_isendpro: SecretStr | None = None
    secret_ecall: SecretStr | None = None
    secret_smsmode: SecretStr | None = None
    allow_ecampaign: str | None = None
    """Source networks allowed to call a provider's callbacks, comma-separated (``any``: open).
    Unset: open, except eCall, whose documented sources are the default."""
    allow_dmc: str | None = None
    allow_isendpro: str | None = None
    allow_ecall: str | None = ECALL_SOURCES
    allow_smsmode: str | None = None
    trusted_proxies: str = ""
    """Reverse proxies whose ``X-Forwarded-For`` is believed, comma-separated networks."""
    max_body_bytes: int = Field(default=256 * 1024, gt=0)
    """Largest request body accepted; larger ones get 413."""
    header_timeout: float = Field(default=10.0, gt=0)
    """Seconds a connection has, from its opening, to send its first request's headers in full
    (a later request's: from its first bytes)."""
    body_timeout: float = Field(default=30.0, gt=0)
    """Seconds a request's body has to arrive in full, from the end of its headers."""
    keepalive_timeout: float = Field(default=75.0, gt=0)
    """Seconds an idle keep-alive connection stays open (longer than a reverse proxy's, often
    60 s, so that the proxy is the one to close it)."""
    max_connections: int = Field(default=1024, gt=0)
    """Open connections at most (and no more than the file descriptor limit allows, less
    ``fd_reserve``); at the cap, the slowest are closed to make room for new ones."""
    fd_reserve: int = Field(default=64, ge=16)
    """File descriptors never given to connections: the journal, the forwarder, the metrics."""

    smsmode_access_token: SecretStr | None = None
    """sMsmode's API key (``accessToken``): set, the hub polls ``responseList.do`` for the
    replies of the account (``hub.pull.smsmode``); unset, that source is off."""
    smsmode_api_url: str = "https://api.smsmode.com/http/1.6"
    """sMsmode's HTTP API base address (a staging account's, a test's fake)."""
    smsmode_pull_interval: float = Field(default=60.0, ge=0.1)
    """Seconds between two polls of ``responseList.do`` (sMsmode documents no rate limit; at
    least 0.1 s, for tests). Failures back off from it, doubling, up to an hour."""

    ecall_username: SecretStr | None = None
    """eCall's account user name (``UserName``); with ``ecall_password`` set too, the hub polls
    the message buffer of the account's rented numbers (``hub.pull.ecall``); unset, that
    source is off."""
    ecall_password: SecretStr | None = None
    """eCall's account password (``Password``)."""
    ecall_api_url: str = "https://url.ecall.ch"
    """eCall's HTTP access base address (seed section 5.1; a staging account's, a test's fake)."""
    ecall_pull_interval: float = Field(default=60.0, ge=0.1)
    """Seconds between two polls of an empty buffer (eCall documents no rate limit; at least
    0.1 s, for tests); a buffer not empty is read on at once, a message at a time. Failures
    back off from it, doubling, up to an hour."""

    ecampaign_user: str | None = None
    """eCampaign's user name (the ``login`` block's ``user``): with the password, the hub polls
    the replies and blacklists of the account (``hub.pull.ecampaign``); unset, that source is
    off."""
    ecampaign_password: SecretStr | None = None
    """The ``login`` block's ``password`` (never logged)."""
    ecampaign_password_md5: bool = False
    """The password is given as its MD5 (the ``login`` block's ``md5`` set to ``true``)."""
    ecampaign_channels: str = "sms,fax,mail"
    """The channels whose replies and blacklist are polled, comma-separated (the feedback
    methods exist for ``sms``, ``fax`` and ``mail``)."""
    ecampaign_api_url: str = "http://api.ecampaign.prosoluce.fr"
    """eCampaign's web services' base address (the document's prefix, p.8)."""
    ecampaign_pull_interval: float = Field(default=60.0, ge=0.1)
    """Seconds between two rounds of eCampaign's lists (it documents no rate limit; at least
    0.1 s, for tests). Failures back off from it, doubling, up to an hour."""

    dmc_service_id: str | None = None
    """DMC's service id (the SOAP header's ``servicId``): with the password and the space id,
    the hub polls ``getResponsesSMS`` for the STOPs and replies (``hub.pull.dmc``); unset,
    that source is off."""
    dmc_service_password: SecretStr | None = None
    """The service's web services password (``servicePassword``, never logged)."""
    dmc_space_id: str | None = None
    """The DMC space (``spaceId``)."""
    dmc_stop_only: bool = False
    """Ask for the STOPs only (``stopOnly``): for an account without the replies option. By
    default every reply, STOPs included, in the one call a minute DMC allows."""
    dmc_api_url: str = "https://www.dmc.sfr-sh.fr/DmcWS/1.5.6"
    """DMC's SOAP web services' base address, version included (1.1.5.1)."""
    dmc_pull_interval: float = Field(default=60.0, ge=60.0)
    """Seconds between two calls of ``getResponsesSMS``: at least 60, SupervisionWS's limit of
    one call a minute (2.4), which no setting lowers."""

    def limits(self) -> Limits:
        return Limits(
            header_timeout=self.header_timeout,
            body_timeout=self.body_timeout,
            keepalive_timeout=self.keepalive_timeout,
            max_connections=self.max_connections,
            fd_reserve=self.fd_reserve,
        )

    def access_policy(self) -> AccessPolicy:
        allow = {}
        for provider in Provider:
            value: str | None = getattr(self, f"allow_{provider.value}")
            if value is not None and value.strip().lower() != "any":
                allow[provider] = networks(value)
        return AccessPolicy(allow=allow, trusted_proxies=networks(self.trusted_proxies))

    def configured_secrets(self) -> dict[Provider, list[str]]:
        found = {}
        for provider in Provider:
            value: SecretStr | None = getattr(self, f"secret_{provider.value}")
            if value is not None:
                found[provider] = [
                    s.strip() for s in value.get_secret_value().split(",") if s.strip()
                ]
        return found

    @field_validator("rabbitmq_url")
    @classmethod
    def _broker_url(cls, value: str | None) -> str | None:
        """A URL the AMQP client cannot use would not fail: it would be tried again for ever."""
        if not value:
            return value
        try:
            url = urlsplit(value)
            url.port  # noqa: B018 (raises ValueError for a port that is no number)
            usable = url.scheme in ("amqp", "amqps") and bool(url.hostname)
        except ValueError:  # a port that is no number
            usable = False
        if not usable:
            raise ValueError("expected amqp://user:password@host:5672/vhost (or amqps://)")
        return value

    @field_validator("index_url")
    @classmethod
    def _index_url(cls, value: SecretStr | None) -> SecretStr | None:
        """A URL that is no PostgreSQL one would be tried again for ever by the worker."""
        if value is None:
            return value
        try:
            url = urlsplit(value.get_secret_value())
            url.port  # noqa: B018 (raises ValueError for a port that is no number)
            usable = url.scheme in ("postgresql", "postgres") and bool(url.hostname)
        except ValueError:
            usable = False
        if not usable:
            raise ValueError("expected postgresql://user:password@host:5432/database")
        return value

    @field_validator("smsmode_api_url", "ecall_api_url", "ecampaign_api_url", "dmc_api_url")
    @classmethod
    def _pull_api_url(cls, value: str) -> str:
        return _http_base(value)

    @field_validator("ecampaign_channels")
    @classmethod
    def _ecampaign_channels(cls, value: str) -> str:
        names = [n.strip().lower() for n in value.split(",") if n.strip()]
        if not names or any(n not in ECAMPAIGN_CHANNELS for n in names):
            raise ValueError("expected channels among sms, fax, mail, comma-separated")
        return ",".join(dict.fromkeys(names))

    @model_validator(mode="after")
    def _pull_credentials_together(self) -> Settings:
        """A source's credentials all set or none: one left out would be refused at every
        poll (and an empty one too)."""
        groups = {
            "HUB_ECAMPAIGN_USER, HUB_ECAMPAIGN_PASSWORD": (
                self.ecampaign_user,
                self.ecampaign_password,
            ),
            "HUB_DMC_SERVICE_ID, HUB_DMC_SERVICE_PASSWORD, HUB_DMC_SPACE_ID": (
                self.dmc_service_id,
                self.dmc_service_password,
                self.dmc_space_id,
            ),
        }
        for names, values in groups.items():
            given = [v for v in values if v is not None]
            texts = [v.get_secret_value() if isinstance(v, SecretStr) else v for v in given]
            if given and (len(given) < len(values) or not all(t.strip() for t in texts)):
                raise ValueError(f"{names}: set all of them (not empty) or none")
        return self

    @model_validator(mode="after")
    def _no_empty_secret(self) -> Settings:
        """An empty secret would silently mean 'generate one' on each replica."""
        for provider in Provider:
            value: SecretStr | None = getattr(self, f"secret_{provider.value}")
            if value is not None and not value.get_secret_value().replace(",", "").strip():
                raise ValueError(f"HUB_SECRET_{provider.value.upper()} is set but empty")
        return self

    @model_validator(mode="after")
    def _no_empty_credentials(self) -> Settings:
        """An empty API key would be sent, and refused at every poll."""
        token = self.smsmode_access_token
        if token is not None and not token.get_secret_value().strip():
            raise ValueError("HUB_SMSMODE_ACCESS_TOKEN is set but empty")
        return self

    @model_validator(mode="after")
    def _ecall_credentials(self) -> Settings:
        """eCall's source needs both; one alone, or an empty one, would be refused at every
        poll."""
        given = {
            "HUB_ECALL_USERNAME": self.ecall_username,
            "HUB_ECALL_PASSWORD": self.ecall_password,
        }
        for name, value in given.items():
            if value is not None and not value.get_secret_value().strip():
                raise ValueError(f"{name} is set but empty")
        if (self.ecall_username is None) != (self.ecall_password is None):
            raise ValueError("HUB_ECALL_USERNAME and HUB_ECALL_PASSWORD go together: set both")
        return self

    @model_validator(mode="after")
    def _retention_covers_dedup(self) -> Settings:
        if self.retention < self.dedup_window:
            raise ValueError("HUB_RETENTION must be at least HUB_DEDUP_WINDOW")
        return self
